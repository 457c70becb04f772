// Amazon Bedrock Runtime Converse / ConverseStream, as the real service puts it on the wire
// (shapes from the recordings in shared/data/provider-fixtures: vercel-ai amazon-bedrock and
// Kong's binary EventStream captures). Written apart from lib/protocol's bedrock translator,
// so end-to-end tests through the gateway are not circular; only the EventStream message
// codec (framing.h) is shared.
#include <algorithm>
#include <cctype>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "examples/emulator/provider_dialect.h"
#include "examples/emulator/scripting.h"
#include "modeenvoy/protocol/framing.h"

namespace modeenvoy::emulator {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr std::string_view kModelPrefix = "/model/";

std::string Dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

// Bedrock's exception name for an HTTP status.
std::string ExceptionFor(int status) {
  switch (status) {
    case 400: return "ValidationException";
    case 401:
    case 403: return "AccessDeniedException";
    case 404: return "ResourceNotFoundException";
    case 408: return "ModelTimeoutException";
    case 424: return "ModelErrorException";
    case 429: return "ThrottlingException";
    case 503: return "ServiceUnavailableException";
    default: return status >= 500 ? "InternalServerException" : "ValidationException";
  }
}

std::string DefaultMessage(int status) {
  switch (status) {
    case 400: return "Malformed input request, please reformat your input and try again.";
    case 403: return "You don't have access to the model with the specified model ID.";
    case 404: return "The provided model identifier is invalid.";
    case 408: return "Model has timed out in processing the request. Try your request again.";
    case 429: return "Too many requests, please wait before trying again.";
    case 500: return "The server encountered an internal error while processing the request.";
    case 503: return "Bedrock is unable to process your request.";
    default: return absl::StrFormat("Emulated error with HTTP status %d.", status);
  }
}

ApiError Error(int status, std::string message, std::string type = "") {
  ApiError e;
  e.status = status;
  e.type = type.empty() ? ExceptionFor(status) : std::move(type);
  e.message = std::move(message);
  e.headers.emplace_back("x-amzn-errortype",
                         e.type + ":http://internal.amazon.com/coral/com.amazon.bedrock/");
  return e;
}

ApiError Validation(std::string message) { return Error(400, std::move(message)); }

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// "/model/{id}/converse" or ".../converse-stream": the id and whether it streams.
bool SplitPath(std::string_view path, std::string* model, bool* stream) {
  if (path.substr(0, kModelPrefix.size()) != kModelPrefix) return false;
  size_t slash = path.rfind('/');
  if (slash <= kModelPrefix.size()) return false;
  std::string_view action = path.substr(slash + 1);
  if (action != "converse" && action != "converse-stream") return false;
  *stream = action == "converse-stream";
  *model = PercentDecode(path.substr(kModelPrefix.size(), slash - kModelPrefix.size()));
  return !model->empty();
}

// /model/{id}/invoke (InvokeModel, the embedding models' route): the model id.
bool SplitInvokePath(std::string_view path, std::string* model) {
  if (path.substr(0, kModelPrefix.size()) != kModelPrefix) return false;
  size_t slash = path.rfind('/');
  if (slash <= kModelPrefix.size() || path.substr(slash + 1) != "invoke") return false;
  *model = PercentDecode(path.substr(kModelPrefix.size(), slash - kModelPrefix.size()));
  return !model->empty();
}

// A model id without its cross-region inference profile prefix.
std::string_view BaseModelId(std::string_view id) {
  for (std::string_view p : {"us.", "eu.", "apac.", "global.", "us-gov."}) {
    if (id.substr(0, p.size()) == p) return id.substr(p.size());
  }
  return id;
}

// The `p` member real ConverseStream payloads carry (padding against length analysis).
std::string Padding(uint64_t seed, size_t n) {
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  return std::string(kAlphabet, kAlphabet + 1 + (seed + n * 7) % 50);
}

std::string Frame(std::string_view type, ojson payload, uint64_t seed, size_t n) {
  payload["p"] = Padding(seed, n);
  return EncodeEventStreamMessage({{":event-type", std::string(type)},
                                   {":content-type", "application/json"},
                                   {":message-type", "event"}},
                                  Dump(payload));
}

std::string StopReason(const std::string& finish, bool refusal) {
  if (refusal || finish == "content_filter") return "content_filtered";
  if (finish == "length") return "max_tokens";
  if (finish == "tool_calls") return "tool_use";
  return "end_turn";
}

// As Bedrock reports it: inputTokens excludes cache reads and writes; totalTokens adds all.
ojson UsageJson(const ScriptedReply& r) {
  const int64_t input = r.prompt_tokens - r.cached_tokens;
  return ojson{{"cacheReadInputTokenCount", r.cached_tokens},
               {"cacheReadInputTokens", r.cached_tokens},
               {"cacheWriteInputTokenCount", 0},
               {"cacheWriteInputTokens", 0},
               {"inputTokens", input},
               {"outputTokens", r.completion_tokens},
               {"serverToolUsage", ojson::object()},
               {"totalTokens", r.prompt_tokens + r.completion_tokens}};
}

// Text of a turn's text blocks (and of its tool results), for the echo and for counting.
std::string TurnText(const json& content, bool with_results) {
  std::string out;
  auto add = [&](const std::string& s) {
    if (!out.empty()) out += "\n";
    out += s;
  };
  for (const json& block : content) {
    if (block.contains("text") && block["text"].is_string()) add(block["text"]);
    if (with_results && block.contains("toolResult")) {
      for (const json& item : block["toolResult"].value("content", json::array())) {
        if (item.contains("text") && item["text"].is_string()) add(item["text"]);
        if (item.contains("json")) add(item["json"].dump());
      }
    }
  }
  return out;
}

class BedrockDialect final : public ProviderDialect {
 public:
  std::string_view name() const override { return "bedrock"; }

  Route Match(const Request& req) const override {
    std::string model;
    bool stream = false;
    if (req.method == "POST" && SplitPath(req.path, &model, &stream)) return Route::kGenerate;
    if (req.method == "POST" && SplitInvokePath(req.path, &model)) return Route::kEmbeddings;
    return Route::kNone;
  }

  // A Bedrock API key (Authorization: Bearer), or the access key id of a SigV4 signature.
  std::string ApiKey(const Request& req) const override {
    std::string_view auth = req.Header("authorization");
    if (auth.substr(0, 7) == "Bearer ") return std::string(auth.substr(7));
    constexpr std::string_view kCredential = "Credential=";
    size_t at = auth.find(kCredential);
    if (auth.substr(0, 16) == "AWS4-HMAC-SHA256" && at != std::string_view::npos) {
      std::string_view rest = auth.substr(at + kCredential.size());
      return std::string(rest.substr(0, rest.find('/')));
    }
    return "";
  }

  std::string Model(const Request& req) const override {
    std::string model;
    bool stream = false;
    if (!SplitPath(req.path, &model, &stream)) SplitInvokePath(req.path, &model);
    return model;
  }

  // InvokeModel with an embedding model, validated as Bedrock does ("Malformed input
  // request" for a body the model's schema refuses):
  //  amazon.titan-embed-text-v2:0  {inputText, dimensions 256|512|1024, normalize,
  //                                 embeddingTypes} -> {embedding, embeddingsByType,
  //                                 inputTextTokenCount}; v1 ids take inputText only
  //  cohere.embed-*                {texts (1..96), input_type, truncate, embedding_types,
  //                                 output_dimension (v4)} -> {embeddings, id, response_type,
  //                                 texts}, no token count in the body
  std::variant<EmbeddingsAsk, ApiError> ParseEmbeddings(const Request& req,
                                                        const ScriptContext& ctx) const override {
    if (std::optional<ApiError> denied = CheckAuth(req)) return *denied;
    EmbeddingsAsk ask;
    SplitInvokePath(req.path, &ask.model);
    const std::string_view base = BaseModelId(ask.model);
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object()) {
      return Error(400, "Malformed input request, please reformat your input and try again.",
                   "ValidationException");
    }
    auto malformed = [](const std::string& what) {
      return Error(400, absl::StrFormat("Malformed input request: %s, please reformat your "
                                        "input and try again.", what),
                   "ValidationException");
    };
    if (base.substr(0, 18) == "amazon.titan-embed") {
      const bool v2 = base.substr(0, 26) == "amazon.titan-embed-text-v2";
      for (const auto& [key, value] : body.items()) {
        const bool known = key == "inputText" ||
                           (v2 && (key == "dimensions" || key == "normalize" ||
                                   key == "embeddingTypes"));
        if (!known) return malformed(absl::StrFormat("#: extraneous key [%s] is not permitted", key));
      }
      if (!body.contains("inputText")) {
        return malformed("#: required key [inputText] not found");
      }
      if (!body["inputText"].is_string() || body["inputText"].get<std::string>().empty()) {
        return malformed("#/inputText: expected minLength: 1");
      }
      ask.texts.push_back(body["inputText"]);
      ask.dimensions = v2 ? 1024 : 1536;
      if (body.contains("dimensions")) {
        const json& d = body["dimensions"];
        if (!d.is_number_integer() ||
            (d.get<int64_t>() != 256 && d.get<int64_t>() != 512 && d.get<int64_t>() != 1024)) {
          return malformed(absl::StrFormat("#/dimensions: %s is not a valid enum value",
                                           d.dump()));
        }
        ask.dimensions = d.get<int64_t>();
      }
      ask.prompt_tokens = ctx.counter.Count(ask.texts[0]);
      ask.extra["family"] = "titan";
      return ask;
    }
    if (base.substr(0, 12) == "cohere.embed") {
      const bool v4 = base.substr(0, 15) == "cohere.embed-v4";
      for (const auto& [key, value] : body.items()) {
        const bool known = key == "texts" || key == "input_type" || key == "truncate" ||
                           key == "embedding_types" || (v4 && key == "output_dimension") ||
                           (v4 && key == "images") || (v4 && key == "inputs");
        if (!known) return malformed(absl::StrFormat("#: extraneous key [%s] is not permitted", key));
      }
      if (!body.contains("input_type")) return malformed("#: required key [input_type] not found");
      const json& type = body["input_type"];
      if (type != "search_document" && type != "search_query" && type != "classification" &&
          type != "clustering") {
        return malformed(absl::StrFormat("#/input_type: %s is not a valid enum value",
                                         type.dump()));
      }
      if (!body.contains("texts") || !body["texts"].is_array() || body["texts"].empty() ||
          body["texts"].size() > 96) {
        return malformed("#/texts: expected an array of 1 to 96 strings");
      }
      for (const json& t : body["texts"]) {
        if (!t.is_string()) return malformed("#/texts: expected type: String");
        ask.texts.push_back(t);
      }
      if (body.contains("embedding_types")) {
        const json& types = body["embedding_types"];
        if (!types.is_array() || types.size() != 1 || types[0] != "float") {
          return malformed("#/embedding_types: the emulator answers [\"float\"] only");
        }
        ask.extra["by_type"] = "1";
      }
      ask.dimensions = v4 ? 1536 : 1024;
      if (body.contains("output_dimension")) {
        const json& d = body["output_dimension"];
        if (!d.is_number_integer() || (d.get<int64_t>() != 256 && d.get<int64_t>() != 512 &&
                                       d.get<int64_t>() != 1024 && d.get<int64_t>() != 1536)) {
          return malformed(absl::StrFormat("#/output_dimension: %s is not a valid enum value",
                                           d.dump()));
        }
        ask.dimensions = d.get<int64_t>();
      }
      ask.extra["family"] = "cohere";
      ask.extra["id"] = MakeId("", 32, HashBytes(req.body));
      return ask;
    }
    return Error(400, "The provided model identifier is invalid.", "ValidationException");
  }

  std::string RenderEmbeddings(const EmbeddingsAsk& ask,
                               const std::vector<std::vector<float>>& vectors) const override {
    if (ask.extra.at("family") == "titan") {
      const std::string v = FloatArrayJson(vectors[0]);
      return absl::StrFormat("{\"embedding\":%s,\"embeddingsByType\":{\"float\":%s},"
                             "\"inputTextTokenCount\":%d}",
                             v, v, ask.prompt_tokens);
    }
    std::string list = "[";
    for (size_t i = 0; i < vectors.size(); ++i) {
      if (i != 0) list += ",";
      list += FloatArrayJson(vectors[i]);
    }
    list += "]";
    const bool by_type = ask.extra.count("by_type") != 0;
    std::string out = absl::StrFormat("{\"embeddings\":%s,\"id\":%s,\"response_type\":%s,"
                                      "\"texts\":%s}",
                                      by_type ? "{\"float\":" + list + "}" : list,
                                      json(ask.extra.at("id")).dump(),
                                      by_type ? "\"embeddings_by_type\"" : "\"embeddings_floats\"",
                                      json(ask.texts).dump());
    return out;
  }

  std::string ToolCallId(uint64_t seed) const override { return MakeId("tooluse_", 22, seed); }

  // A SigV4 Authorization header of the right shape for this service, or a bearer key.
  static std::optional<ApiError> CheckAuth(const Request& req) {
    std::string_view auth = req.Header("authorization");
    if (auth.empty()) return Error(403, "Missing Authentication Token", "MissingAuthenticationTokenException");
    if (auth.substr(0, 7) == "Bearer ") {
      if (auth.size() == 7) return Error(403, "Invalid API Key format: Must start with pre-defined prefix", "AccessDeniedException");
      return std::nullopt;
    }
    if (auth.substr(0, 17) != "AWS4-HMAC-SHA256 ") {
      return Error(403, "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.", "IncompleteSignatureException");
    }
    std::string credential, signed_headers, signature;
    for (absl::string_view part : absl::StrSplit(absl::string_view(auth.data() + 17, auth.size() - 17), ',')) {
      std::string p(part);
      p.erase(0, p.find_first_not_of(' '));
      if (p.rfind("Credential=", 0) == 0) credential = p.substr(11);
      if (p.rfind("SignedHeaders=", 0) == 0) signed_headers = p.substr(14);
      if (p.rfind("Signature=", 0) == 0) signature = p.substr(10);
    }
    std::vector<std::string> scope = absl::StrSplit(credential, '/');
    const bool scope_ok = scope.size() == 5 && !scope[0].empty() && scope[1].size() == 8 &&
                          !scope[2].empty() && scope[3] == "bedrock" && scope[4] == "aws4_request";
    const bool signature_ok =
        signature.size() == 64 &&
        std::all_of(signature.begin(), signature.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) && !std::isupper(static_cast<unsigned char>(c)); });
    std::vector<std::string> headers = absl::StrSplit(signed_headers, ';');
    const bool headers_ok = std::find(headers.begin(), headers.end(), "host") != headers.end() &&
                            std::find(headers.begin(), headers.end(), "x-amz-date") != headers.end();
    if (!scope_ok || !signature_ok || !headers_ok || !req.HasHeader("x-amz-date")) {
      return Error(403, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.", "InvalidSignatureException");
    }
    return std::nullopt;
  }

  std::variant<ParsedRequest, ApiError> Parse(const Request& req,
                                              const ScriptContext& ctx) const override {
    if (std::optional<ApiError> denied = CheckAuth(req)) return *denied;
    std::string model;
    bool stream = false;
    SplitPath(req.path, &model, &stream);
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object()) {
      return Error(400, "Unable to parse request body", "SerializationException");
    }
    static const char* const kKnown[] = {
        "messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig",
        "additionalModelRequestFields", "promptVariables", "additionalModelResponseFieldPaths",
        "requestMetadata", "performanceConfig", "serviceTier", "outputConfig"};
    for (auto it = body.begin(); it != body.end(); ++it) {
      if (std::none_of(std::begin(kKnown), std::end(kKnown),
                       [&](const char* k) { return it.key() == k; })) {
        return Error(400, absl::StrFormat("Unknown parameter in input: \"%s\"", it.key()),
                     "SerializationException");
      }
    }
    auto messages = body.find("messages");
    if (messages == body.end() || !messages->is_array()) {
      return Validation("1 validation error detected: Value null at 'messages' failed to satisfy constraint: Member must not be null");
    }
    if (messages->empty()) {
      return Validation("A conversation must start with a user message. Try again with a conversation that starts with a user message.");
    }
    const bool has_tool_config = body.contains("toolConfig");
    ParsedRequest out;
    int64_t tokens = 0;
    for (size_t i = 0; i < messages->size(); ++i) {
      const json& m = (*messages)[i];
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string() ||
          (m["role"] != "user" && m["role"] != "assistant")) {
        return Validation(absl::StrFormat("1 validation error detected: Value at 'messages.%d.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]", i + 1));
      }
      const std::string role = m["role"];
      if (i == 0 && role != "user") {
        return Validation("A conversation must start with a user message. Try again with a conversation that starts with a user message.");
      }
      if (i > 0 && (*messages)[i - 1]["role"] == role) {
        return Validation("A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.");
      }
      if (!m.contains("content") || !m["content"].is_array() || m["content"].empty()) {
        return Validation(absl::StrFormat("The content field in the Message object at messages.%d is empty. Add a ContentBlock object to the content field and try again.", i));
      }
      for (size_t j = 0; j < m["content"].size(); ++j) {
        const json& block = m["content"][j];
        if (!block.is_object() || block.size() != 1) {
          return Validation(absl::StrFormat("messages.%d.content.%d: a ContentBlock has exactly one member", i, j));
        }
        const std::string kind = block.begin().key();
        const json& v = block.begin().value();
        if (kind == "text") {
          if (!v.is_string() || v.get<std::string>().find_first_not_of(" \t\r\n") == std::string::npos) {
            return Validation(absl::StrFormat("The text field in the ContentBlock object at messages.%d.content.%d is blank. Add text to the text field, and try again.", i, j));
          }
          tokens += ctx.counter.Count(v.get<std::string>());
        } else if (kind == "image") {
          static const char* const kFormats[] = {"png", "jpeg", "gif", "webp"};
          if (!v.is_object() || !v.contains("format") || !v["format"].is_string() ||
              std::none_of(std::begin(kFormats), std::end(kFormats), [&](const char* f) { return v["format"] == f; }) ||
              !v.contains("source") || !v["source"].is_object() ||
              !(v["source"].contains("bytes") || v["source"].contains("s3Location"))) {
            return Validation(absl::StrFormat("messages.%d.content.%d.image: format (png, jpeg, gif, webp) and source are required", i, j));
          }
          tokens += 85;  // a small image, about what Claude charges per tile
        } else if (kind == "toolUse" || kind == "toolResult") {
          if (!has_tool_config) {
            return Validation("The toolConfig field must be defined when using toolUse and toolResult content blocks.");
          }
          if (!v.is_object() || !v.contains("toolUseId") || !v["toolUseId"].is_string()) {
            return Validation(absl::StrFormat("messages.%d.content.%d.%s.toolUseId: required", i, j, kind));
          }
          if (kind == "toolUse") {
            if (role != "assistant" || !v.contains("name") || !v.contains("input") || !v["input"].is_object()) {
              return Validation(absl::StrFormat("messages.%d.content.%d.toolUse: name and an object input are required in assistant turns", i, j));
            }
            tokens += ctx.counter.Count(v["name"].get<std::string>()) + ctx.counter.Count(v["input"].dump());
          } else if (role != "user") {
            return Validation(absl::StrFormat("messages.%d.content.%d.toolResult: only in user turns", i, j));
          }
        } else if (kind == "reasoningContent" || kind == "cachePoint" || kind == "document") {
          if (kind == "reasoningContent" && v.contains("reasoningText")) {
            tokens += ctx.counter.Count(v["reasoningText"].value("text", ""));
          }
        } else {
          return Validation(absl::StrFormat("messages.%d.content.%d: unknown ContentBlock member \"%s\"", i, j, kind));
        }
      }
      if (role == "user") tokens += ctx.counter.Count(TurnText(m["content"], true)) -
                                    ctx.counter.Count(TurnText(m["content"], false));
    }
    if (auto system = body.find("system"); system != body.end()) {
      if (!system->is_array()) return Validation("system: expected a list of SystemContentBlock");
      for (const json& s : *system) {
        if (s.contains("text") && s["text"].is_string()) tokens += ctx.counter.Count(s["text"].get<std::string>());
      }
    }

    // inferenceConfig
    if (auto inf = body.find("inferenceConfig"); inf != body.end()) {
      if (!inf->is_object()) return Validation("inferenceConfig: expected an object");
      for (auto it = inf->begin(); it != inf->end(); ++it) {
        const json& v = it.value();
        if (it.key() == "maxTokens") {
          if (!v.is_number_integer() || v.get<int64_t>() < 1) {
            return Validation("1 validation error detected: Value at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1");
          }
          out.max_tokens = v.get<int64_t>();
        } else if (it.key() == "temperature" || it.key() == "topP") {
          if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 1) {
            return Validation(absl::StrFormat("1 validation error detected: Value at 'inferenceConfig.%s' failed to satisfy constraint: Member must have value less than or equal to 1", it.key()));
          }
        } else if (it.key() == "stopSequences") {
          if (!v.is_array()) return Validation("inferenceConfig.stopSequences: expected a list");
        } else {
          return Error(400, absl::StrFormat("Unknown parameter in inferenceConfig: \"%s\"", it.key()), "SerializationException");
        }
      }
    }

    // toolConfig
    if (auto tc = body.find("toolConfig"); tc != body.end()) {
      if (!tc->is_object() || !tc->contains("tools") || !(*tc)["tools"].is_array() || (*tc)["tools"].empty()) {
        return Validation("The value at toolConfig.tools is not valid: Member must have length greater than or equal to 1");
      }
      for (const json& t : (*tc)["tools"]) {
        if (t.contains("cachePoint")) continue;
        if (!t.contains("toolSpec") || !t["toolSpec"].is_object() || !t["toolSpec"].contains("name") ||
            !t["toolSpec"]["name"].is_string() || !t["toolSpec"].contains("inputSchema") ||
            !t["toolSpec"]["inputSchema"].contains("json")) {
          return Validation("toolConfig.tools: each tool needs toolSpec.name and toolSpec.inputSchema.json");
        }
        out.tool_names.push_back(t["toolSpec"]["name"]);
        out.tool_schemas.push_back(t["toolSpec"]["inputSchema"]["json"].dump());
        tokens += ctx.counter.Count(t["toolSpec"].dump());
      }
      if (auto choice = tc->find("toolChoice"); choice != tc->end()) {
        if (choice->contains("any")) {
          out.tool_choice = ToolChoice::kRequired;
        } else if (choice->contains("tool")) {
          out.tool_choice = ToolChoice::kNamed;
          out.named_tool = (*choice)["tool"].value("name", "");
          if (std::find(out.tool_names.begin(), out.tool_names.end(), out.named_tool) == out.tool_names.end()) {
            return Validation(absl::StrFormat("The tool %s in toolChoice is not defined in toolConfig.tools.", out.named_tool));
          }
        } else if (!choice->contains("auto")) {
          return Validation("toolConfig.toolChoice: expected one of auto, any, tool");
        }
      }
    }

    // The last turn: the echo, "call" lines and the @emulator directive.
    const size_t last_index = messages->size() - 1;
    const json& last = messages->back();
    if (last["role"] == "user") {
      out.last_user = TurnText(last["content"], false);
      out.directive_param = absl::StrFormat("messages.%d.content", last_index);
      absl::StatusOr<std::optional<std::string>> directive = TakeDirective(&out.last_user);
      absl::Status bad = directive.status();
      if (bad.ok() && directive->has_value()) {
        absl::StatusOr<std::shared_ptr<const Script>> script = ParseScript(**directive);
        if (script.ok()) out.directive = *std::move(script);
        bad = script.status();
      }
      if (!bad.ok()) {
        return Validation(absl::StrFormat("%s: @emulator directive: %s", out.directive_param, bad.message()));
      }
      std::string results = TurnText(last["content"], true);
      out.echo = out.last_user.empty() ? results : out.last_user;
    }
    out.seed = HashBytes(req.body, ctx.sequence);
    out.id = MakeId("", 32, out.seed);
    out.model = model;
    out.created = 0;
    out.stream = stream;
    out.include_usage = true;
    out.prompt_tokens = tokens;
    return out;
  }

  static ojson Content(const ScriptedReply& r, uint64_t seed) {
    ojson content = ojson::array();
    if (!r.reasoning.empty()) {
      content.push_back({{"reasoningContent",
                          {{"reasoningText", {{"signature", MakeId("Ep", 40, seed)}, {"text", r.reasoning}}}}}});
    }
    std::string text = r.refusal.value_or(r.text);
    if (!text.empty()) content.push_back({{"text", text}});
    for (const ToolCall& c : r.tool_calls) {
      content.push_back({{"toolUse",
                          {{"toolUseId", c.id}, {"name", c.name}, {"input", ojson::parse(c.arguments)}}}});
    }
    return content;
  }

  std::string RenderWhole(const ScriptedReply& r) const override {
    ojson out = {{"metrics", {{"latencyMs", 120}}},
                 {"output", {{"message", {{"content", Content(r, r.seed)}, {"role", "assistant"}}}}},
                 {"stopReason", StopReason(r.finish_reason, r.refusal.has_value())},
                 {"usage", UsageJson(r)}};
    return Dump(out);
  }

  // messageStart; a reasoning block (text deltas, then its signature); a text block (no
  // contentBlockStart for text, as Bedrock sends it); one block per tool call
  // (contentBlockStart with id and name, input fragments); messageStop; metadata.
  std::vector<std::string> RenderStream(const ScriptedReply& r) const override {
    std::vector<std::string> events;
    auto emit = [&](std::string_view type, ojson payload) {
      events.push_back(Frame(type, std::move(payload), r.seed, events.size()));
    };
    int block = 0;
    emit("messageStart", {{"role", "assistant"}});
    if (!r.reasoning_pieces.empty()) {
      for (const std::string& piece : r.reasoning_pieces) {
        emit("contentBlockDelta", {{"contentBlockIndex", block}, {"delta", {{"reasoningContent", {{"text", piece}}}}}});
      }
      emit("contentBlockDelta", {{"contentBlockIndex", block}, {"delta", {{"reasoningContent", {{"signature", MakeId("Ep", 40, r.seed)}}}}}});
      emit("contentBlockStop", {{"contentBlockIndex", block++}});
    }
    const std::vector<std::string>& pieces = r.refusal.has_value() ? r.refusal_pieces : r.text_pieces;
    if (!pieces.empty()) {
      for (const std::string& piece : pieces) {
        emit("contentBlockDelta", {{"contentBlockIndex", block}, {"delta", {{"text", piece}}}});
      }
      emit("contentBlockStop", {{"contentBlockIndex", block++}});
    }
    for (const ToolCall& c : r.tool_calls) {
      emit("contentBlockStart", {{"contentBlockIndex", block}, {"start", {{"toolUse", {{"name", c.name}, {"toolUseId", c.id}}}}}});
      for (const std::string& frag : SplitFragments(c.arguments, 8)) {
        emit("contentBlockDelta", {{"contentBlockIndex", block}, {"delta", {{"toolUse", {{"input", frag}}}}}});
      }
      emit("contentBlockStop", {{"contentBlockIndex", block++}});
    }
    emit("messageStop", {{"stopReason", StopReason(r.finish_reason, r.refusal.has_value())}});
    emit("metadata", {{"metrics", {{"latencyMs", 120}}}, {"usage", UsageJson(r)}});
    if (r.interrupt.has_value()) {
      events.resize(std::min(events.size(), static_cast<size_t>(r.interrupt->after_chunks)));
      if (!r.interrupt->reset) {
        const ScriptedError& se = r.interrupt->error;
        std::string type = se.type.value_or(ExceptionFor(se.status));
        type[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(type[0])));
        events.push_back(EncodeEventStreamMessage(
            {{":exception-type", type}, {":content-type", "application/json"}, {":message-type", "exception"}},
            Dump(ojson{{"message", se.message.value_or(DefaultMessage(se.status))}})));
      }
    }
    return events;
  }

  std::string RenderModels(const std::vector<std::string>& models) const override {
    ojson list = ojson::array();
    for (const std::string& m : models) list.push_back({{"modelId", m}});
    return Dump(ojson{{"modelSummaries", list}});
  }

  ApiError MakeError(ErrorCause cause, int status, const Request& req) const override {
    switch (cause) {
      case ErrorCause::kUnknownRoute:
        return Error(404, "Unknown operation", "UnknownOperationException");
      case ErrorCause::kBodyTooLarge:
        return Error(413, "Request body too large", "ValidationException");
      case ErrorCause::kBadHttp:
        return Error(400, "Bad request", "ValidationException");
      case ErrorCause::kUnauthorized:
        return ApiKey(req).empty()
                   ? Error(403, "Missing Authentication Token", "MissingAuthenticationTokenException")
                   : Error(403, "The security token included in the request is invalid.", "UnrecognizedClientException");
      case ErrorCause::kInjected:
        break;
    }
    return Error(status, DefaultMessage(status));
  }

  std::string RenderError(const ApiError& e) const override {
    return Dump(ojson{{"message", e.message}});
  }

  Headers ResponseHeaders(uint64_t sequence) const override {
    std::string id = MakeId("", 32, sequence * 0x9E3779B97F4A7C15ULL + 7);
    std::transform(id.begin(), id.end(), id.begin(), [](unsigned char c) { return std::tolower(c); });
    return {{"x-amzn-requestid", absl::StrFormat("%s-%s-%s-%s-%s", id.substr(0, 8), id.substr(8, 4),
                                                 id.substr(12, 4), id.substr(16, 4), id.substr(20, 12))}};
  }

  std::string_view stream_content_type() const override {
    return "application/vnd.amazon.eventstream";
  }
};

}  // namespace

std::unique_ptr<ProviderDialect> NewBedrockDialect() { return std::make_unique<BedrockDialect>(); }

}  // namespace modeenvoy::emulator
