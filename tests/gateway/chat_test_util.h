// tests/gateway/chat_test_util.h: the OpenAI-shaped chat requests and answers the engine
// tests send and script providers to return.
//   HttpRequest request = Post(ChatBody("demo", /*stream=*/true));
//   c.SendResponse(200, {{"content-type", "application/json"}}, CompletionJson("m"));
#ifndef MODEENVOY_TESTS_GATEWAY_CHAT_TEST_UTIL_H_
#define MODEENVOY_TESTS_GATEWAY_CHAT_TEST_UTIL_H_

#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_format.h"
#include "modeenvoy/gateway/http.h"

namespace modeenvoy {
namespace gateway_testing {

// A whole chat.completion for `model` answering "Hello!" (5 prompt + 2 completion tokens).
inline std::string CompletionJson(std::string_view model) {
  return absl::StrFormat(
      R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"%s",)"
      R"("choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},)"
      R"("finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,)"
      R"("total_tokens":7}})",
      model);
}

// A one-message chat request body for `model`; `extra` is spliced in as further members.
// A streamed one asks for usage (stream_options.include_usage), so the client's stream
// keeps the usage chunk the engine otherwise strips.
inline std::string ChatBody(std::string_view model, bool stream = false,
                            std::string_view extra = "") {
  return absl::StrFormat(
      R"({"model":"%s","messages":[{"role":"user","content":"hi"}]%s%s})", model,
      stream ? R"(,"stream":true,"stream_options":{"include_usage":true})" : "", extra);
}

// POST /v1/chat/completions with `body` as JSON, from 127.0.0.1:1.
inline HttpRequest Post(std::string body, HttpHeaders headers = {}) {
  HttpRequest r;
  r.method = "POST";
  r.path = "/v1/chat/completions";
  r.headers = std::move(headers);
  r.headers.emplace_back("content-type", "application/json");
  r.body = std::move(body);
  r.remote_address = "127.0.0.1:1";
  return r;
}

}  // namespace gateway_testing
}  // namespace modeenvoy

#endif  // MODEENVOY_TESTS_GATEWAY_CHAT_TEST_UTIL_H_
