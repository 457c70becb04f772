// tests/node/openai_client.mjs: the official `openai` npm package as a client of the gateway,
// driven by tests/python/test_node_openai.py (which asserts on what this prints).
//   node tests/node/openai_client.mjs <gateway base url> <api key> <case json>
// <case json> is {"models": {"chat": [...], "responses": [...]}, "limited": "<model>"}.
// Runs every case once and prints one JSON object to stdout: {"<case>/<model>": result},
// where a result is what the SDK returned (the fields the test checks) or, when the call
// threw, {"thrown": {"class", "status", "is_api_error", "type", "param", "message"}}.
// No retries (maxRetries 0), 30 s timeout per call; exits 0 unless it could not run at all.
import OpenAI from 'openai';

const [baseURL, apiKey, spec] = process.argv.slice(2);
if (!baseURL || !apiKey || !spec) {
  console.error('usage: openai_client.mjs <base url> <api key> <case json>');
  process.exit(2);
}
const { models, limited } = JSON.parse(spec);
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey, maxRetries: 0, timeout: 30000 });

const WEATHER_CHAT = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};
const WEATHER_RESPONSES = {
  type: 'function',
  name: 'get_weather',
  description: 'Current weather',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

function thrown(err) {
  return {
    thrown: {
      class: err?.constructor?.name ?? typeof err,
      is_api_error: err instanceof OpenAI.APIError,
      status: err?.status ?? null,
      type: err?.type ?? err?.error?.type ?? null,
      param: err?.param ?? err?.error?.param ?? null,
      message: String(err?.message ?? err),
    },
  };
}

const cases = {
  async chat_whole(model) {
    const c = await client.chat.completions.create({
      model, messages: [{ role: 'user', content: 'hello there friend' }],
    });
    return {
      object: c.object, text: c.choices[0].message.content,
      finish_reason: c.choices[0].finish_reason, completion_tokens: c.usage?.completion_tokens,
    };
  },
  async chat_stream(model) {
    const stream = await client.chat.completions.create({
      model, messages: [{ role: 'user', content: 'one two three four' }], stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish = null;
    let usage = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks += 1;
      if (chunk.object !== 'chat.completion.chunk') throw new Error(`chunk object ${chunk.object}`);
      for (const choice of chunk.choices) {
        text += choice.delta?.content ?? '';
        if (choice.finish_reason) finish = choice.finish_reason;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    return { text, finish_reason: finish, chunks, completion_tokens: usage?.completion_tokens };
  },
  async chat_tool_call(model) {
    const c = await client.chat.completions.create({
      model, tools: [WEATHER_CHAT],
      messages: [{ role: 'user', content: 'call get_weather {"city": "Paris"}' }],
    });
    const calls = c.choices[0].message.tool_calls ?? [];
    const second = await client.chat.completions.create({
      model, tools: [WEATHER_CHAT],
      messages: [
        { role: 'user', content: 'call get_weather {"city": "Paris"}' },
        c.choices[0].message,
        { role: 'tool', tool_call_id: calls[0]?.id, content: 'sunny and 21 degrees' },
      ],
    });
    return {
      finish_reason: c.choices[0].finish_reason,
      calls: calls.map((t) => ({ id: t.id, type: t.type, name: t.function.name,
                                 arguments: JSON.parse(t.function.arguments) })),
      answer: second.choices[0].message.content,
      answer_finish_reason: second.choices[0].finish_reason,
    };
  },
  async responses_whole(model) {
    const r = await client.responses.create({
      model, instructions: 'Be brief.', input: 'hello there friend',
    });
    return {
      object: r.object, id: r.id, status: r.status, output_text: r.output_text,
      output_types: r.output.map((o) => o.type), output_tokens: r.usage?.output_tokens,
    };
  },
  async responses_stream(model) {
    const stream = await client.responses.create({ model, input: 'one two three four', stream: true });
    const types = [];
    const sequence = [];
    let text = '';
    let final = null;
    for await (const event of stream) {
      types.push(event.type);
      sequence.push(event.sequence_number);
      if (event.type === 'response.output_text.delta') text += event.delta;
      if (event.type === 'response.completed') final = event.response;
    }
    return {
      types, sequence, text, status: final?.status ?? null,
      // output_text is the SDK's convenience on create() results, not a wire field: the
      // completed response's text is read from its output items.
      final_text: final === null ? null : final.output.filter((o) => o.type === 'message')
        .flatMap((o) => o.content).filter((c) => c.type === 'output_text')
        .map((c) => c.text).join(''),
      output_tokens: final?.usage?.output_tokens,
    };
  },
  async responses_tool_call(model) {
    const r = await client.responses.create({
      model, tools: [WEATHER_RESPONSES], input: 'call get_weather {"city": "Paris"}',
    });
    const calls = r.output.filter((o) => o.type === 'function_call');
    const second = await client.responses.create({
      model, tools: [WEATHER_RESPONSES],
      input: [
        { role: 'user', content: 'call get_weather {"city": "Paris"}' },
        ...calls,
        { type: 'function_call_output', call_id: calls[0]?.call_id, output: 'sunny and 21 degrees' },
      ],
    });
    return {
      calls: calls.map((c) => ({ name: c.name, call_id: c.call_id,
                                 arguments: JSON.parse(c.arguments) })),
      answer: second.output_text,
    };
  },
};

const errorCases = {
  async error_rate_limited() {
    return client.chat.completions.create({
      model: limited, messages: [{ role: 'user', content: 'hi' }],
    });
  },
  async error_bad_field(model) {
    return client.chat.completions.create({
      model, temperature: 'hot', messages: [{ role: 'user', content: 'hi' }],
    });
  },
  async error_responses_bad_field(model) {
    return client.responses.create({ model, input: 'hi', max_output_tokens: 'many' });
  },
};

const out = {};
async function run(name, fn, model) {
  try {
    out[`${name}/${model}`] = await fn(model);
  } catch (err) {
    out[`${name}/${model}`] = thrown(err);
  }
}
for (const model of models.chat) {
  for (const name of ['chat_whole', 'chat_stream', 'chat_tool_call']) await run(name, cases[name], model);
}
for (const model of models.responses) {
  for (const name of ['responses_whole', 'responses_stream', 'responses_tool_call']) {
    await run(name, cases[name], model);
  }
}
await run('error_rate_limited', errorCases.error_rate_limited, limited);
await run('error_bad_field', errorCases.error_bad_field, models.chat[0]);
await run('error_responses_bad_field', errorCases.error_responses_bad_field, models.responses[0]);
process.stdout.write(`${JSON.stringify(out)}\n`);
