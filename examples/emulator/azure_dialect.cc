// Azure OpenAI Chat Completions, as Azure puts it on the wire: the OpenAI body and stream
// (this emulator's OpenAI dialect renders them) behind Azure's routes, key header and errors,
// with Azure's content filter annotations (shaped after the recorded Azure stream in
// shared/data/provider-fixtures: vercel-ai openai/chat/azure-model-router.1.chunks.txt, and
// kong ai-proxy/unit/real-responses/azure).
//   POST /openai/deployments/{deployment}/chat/completions?api-version=...  (required)
//   POST /openai/v1/chat/completions                                          (model in body)
//   GET  /openai/models, /openai/v1/models
// Auth: `api-key: K`, or `Authorization: Bearer K` (an Entra ID token).
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "examples/emulator/provider_dialect.h"
#include "examples/emulator/scripting.h"

namespace modeenvoy::emulator {
namespace {

using json = nlohmann::json;  // sorted keys, as Azure writes them

constexpr std::string_view kDeployments = "/openai/deployments/";
constexpr std::string_view kV1Chat = "/openai/v1/chat/completions";

std::string PercentDecode(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
      continue;
    }
    out.push_back(s[i]);
  }
  return out;
}

// The deployment of a deployments-route path, or "" for another path.
std::string DeploymentOf(std::string_view path, std::string_view operation = "/chat/completions") {
  if (path.substr(0, kDeployments.size()) != kDeployments) return "";
  std::string_view rest = path.substr(kDeployments.size());
  size_t slash = rest.find('/');
  if (slash == 0 || slash == std::string_view::npos || rest.substr(slash) != operation) {
    return "";
  }
  return PercentDecode(rest.substr(0, slash));
}

constexpr std::string_view kEmbeddingsOp = "/embeddings";
constexpr std::string_view kV1Embeddings = "/openai/v1/embeddings";

std::string QueryParam(std::string_view target, std::string_view name) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return "";
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name && eq != std::string_view::npos) {
      return std::string(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return "";
}

json Safe() { return {{"filtered", false}, {"severity", "safe"}}; }

// What Azure's filters say about generated text: all safe, or (finish_reason
// "content_filter") the hate category filtered.
json ContentFilterResults(bool filtered) {
  json r = {{"hate", Safe()}, {"self_harm", Safe()}, {"sexual", Safe()}, {"violence", Safe()}};
  if (filtered) r["hate"] = {{"filtered", true}, {"severity", "high"}};
  return r;
}

json PromptFilterResults() {
  json results = ContentFilterResults(false);
  results["jailbreak"] = {{"filtered", false}, {"detected", false}};
  return json::array({{{"prompt_index", 0}, {"content_filter_results", std::move(results)}}});
}

std::string Event(const json& j) {
  return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

class AzureDialect final : public ProviderDialect {
 public:
  std::string_view name() const override { return "azure_openai"; }

  Route Match(const Request& req) const override {
    if (req.method == "POST" && (!DeploymentOf(req.path).empty() || req.path == kV1Chat)) {
      return Route::kGenerate;
    }
    if (req.method == "POST" &&
        (!DeploymentOf(req.path, kEmbeddingsOp).empty() || req.path == kV1Embeddings)) {
      return Route::kEmbeddings;
    }
    if (req.method == "GET" && (req.path == "/openai/models" || req.path == "/openai/v1/models")) {
      return Route::kListModels;
    }
    return Route::kNone;
  }

  std::string ApiKey(const Request& req) const override {
    if (req.HasHeader("api-key")) return std::string(req.Header("api-key"));
    return openai_->ApiKey(req);  // Authorization: Bearer (Entra ID)
  }

  std::string Model(const Request& req) const override {
    std::string deployment = DeploymentOf(req.path);
    if (deployment.empty()) deployment = DeploymentOf(req.path, kEmbeddingsOp);
    return deployment.empty() ? openai_->Model(req) : deployment;
  }

  // OpenAI's embeddings API on a deployment: the deployment names the model (a body
  // "model" is optional) and api-version is required; the answer is OpenAI's.
  std::variant<EmbeddingsAsk, ApiError> ParseEmbeddings(const Request& req,
                                                        const ScriptContext& ctx) const override {
    const std::string deployment = DeploymentOf(req.path, kEmbeddingsOp);
    if (!deployment.empty() && QueryParam(req.target, "api-version").empty()) return NotFound();
    Request inner = req;
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (!deployment.empty() && body.is_object()) {
      body["model"] = deployment;
      inner.body = body.dump();
    }
    return openai_->ParseEmbeddings(inner, ctx);
  }
  std::string RenderEmbeddings(const EmbeddingsAsk& ask,
                               const std::vector<std::vector<float>>& vectors) const override {
    return openai_->RenderEmbeddings(ask, vectors);
  }

  std::string ToolCallId(uint64_t seed) const override { return openai_->ToolCallId(seed); }

  std::variant<ParsedRequest, ApiError> Parse(const Request& req,
                                              const ScriptContext& ctx) const override {
    const std::string deployment = DeploymentOf(req.path);
    if (!deployment.empty() && QueryParam(req.target, "api-version").empty()) {
      return NotFound();  // Azure: no api-version, no resource
    }
    Request inner = req;
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (!deployment.empty() && body.is_object() && !body.contains("model")) {
      body["model"] = deployment;  // the deployment names the model; the body need not
      inner.body = body.dump();
    }
    auto parsed = openai_->Parse(inner, ctx);
    if (auto* p = std::get_if<ParsedRequest>(&parsed)) p->extra["service_tier"] = "";
    return parsed;
  }

  std::string RenderWhole(const ScriptedReply& r) const override {
    json out = json::parse(openai_->RenderWhole(r));
    out.erase("service_tier");
    out["prompt_filter_results"] = PromptFilterResults();
    for (json& choice : out["choices"]) {
      choice["content_filter_results"] =
          ContentFilterResults(choice.value("finish_reason", "") == "content_filter");
    }
    return out.dump(-1, ' ', false, json::error_handler_t::replace);
  }

  // The prompt filter event first (empty choices, blank id and model, as Azure sends it),
  // then OpenAI's events with content_filter_results on every choice ({} when the delta
  // carries no text).
  std::vector<std::string> RenderStream(const ScriptedReply& r) const override {
    std::vector<std::string> events;
    events.push_back(Event({{"choices", json::array()},
                            {"created", 0},
                            {"id", ""},
                            {"model", ""},
                            {"object", ""},
                            {"prompt_filter_results", PromptFilterResults()}}));
    constexpr std::string_view kData = "data: ";
    for (std::string& e : openai_->RenderStream(r)) {
      if (e.rfind(kData, 0) != 0 || e.rfind("data: [DONE]", 0) == 0) {
        events.push_back(std::move(e));
        continue;
      }
      json chunk = json::parse(e.substr(kData.size()), nullptr, false);
      if (!chunk.is_object() || chunk.contains("error")) {
        events.push_back(std::move(e));
        continue;
      }
      chunk.erase("service_tier");
      for (json& choice : chunk["choices"]) {
        const json& delta = choice["delta"];
        const bool text = (delta.contains("content") && delta["content"].is_string() &&
                           !delta["content"].get<std::string>().empty()) ||
                          (delta.contains("refusal") && delta["refusal"].is_string() &&
                           !delta["refusal"].get<std::string>().empty());
        const bool filtered = choice.value("finish_reason", json()) == "content_filter";
        choice["content_filter_results"] =
            text || filtered ? ContentFilterResults(filtered) : json::object();
      }
      events.push_back(Event(chunk));
    }
    return events;
  }

  std::string RenderModels(const std::vector<std::string>& models) const override {
    json data = json::array();
    for (const std::string& m : models) {
      data.push_back({{"id", m},
                      {"object", "model"},
                      {"created_at", 1715558400},
                      {"status", "succeeded"},
                      {"capabilities", {{"chat_completion", true}}}});
    }
    return json{{"data", std::move(data)}, {"object", "list"}}.dump();
  }

  ApiError MakeError(ErrorCause cause, int status, const Request& req) const override {
    ApiError e = openai_->MakeError(cause, status, req);
    switch (status) {
      case 401:
        e.type.clear();
        e.code = "401";
        e.message =
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
            "provide a valid key for an active subscription and use a correct regional API "
            "endpoint for your resource.";
        break;
      case 404:
        if (cause == ErrorCause::kUnknownRoute) return NotFound();
        e.type.clear();
        e.code = "DeploymentNotFound";
        e.message =
            "The API deployment for this resource does not exist. If you created the "
            "deployment within the last 5 minutes, please wait a moment and try again.";
        break;
      case 429:
        e.type.clear();
        e.code = "429";
        e.message = absl::StrFormat(
            "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
            "%s have exceeded token rate limit of your current OpenAI S0 pricing tier. Please "
            "retry after 1 second.",
            QueryParam(req.target, "api-version").empty() ? "v1"
                                                          : QueryParam(req.target, "api-version"));
        break;
      default:
        break;
    }
    return e;
  }

  // {"error":{"code","message","param","type","status"}}; a content filter error
  // (code "content_filter") carries Azure's innererror with the filter results.
  std::string RenderError(const ApiError& e) const override {
    json error = {{"message", e.message},
                  {"type", e.type.empty() ? json(nullptr) : json(e.type)},
                  {"param", e.param ? json(*e.param) : json(nullptr)},
                  {"code", e.code ? json(*e.code) : json(nullptr)}};
    if (e.code == "content_filter") {
      error["status"] = e.status;
      if (!e.param.has_value()) error["param"] = "prompt";
      json results = ContentFilterResults(true);
      results["jailbreak"] = {{"filtered", false}, {"detected", false}};
      error["innererror"] = {{"code", "ResponsibleAIPolicyViolation"},
                             {"content_filter_result", std::move(results)}};
    }
    return json{{"error", std::move(error)}}.dump();
  }

  Headers ResponseHeaders(uint64_t sequence) const override {
    std::string id = MakeId("", 32, sequence * 0x9E3779B97F4A7C15ULL + 7);
    return {{"apim-request-id", id},
            {"x-request-id", id},
            {"x-ms-region", "East US"},
            {"azureml-model-session", "emulator"},
            {"x-ratelimit-remaining-requests", "99"},
            {"x-ratelimit-remaining-tokens", "99000"}};
  }

  std::string_view stream_content_type() const override {
    return "text/event-stream; charset=utf-8";
  }

 private:
  static ApiError NotFound() {
    ApiError e;
    e.status = 404;
    e.code = "404";
    e.message = "Resource not found";
    return e;
  }

  const std::unique_ptr<ProviderDialect> openai_ = NewOpenAiDialect();
};

}  // namespace

std::unique_ptr<ProviderDialect> NewAzureDialect() { return std::make_unique<AzureDialect>(); }

}  // namespace modeenvoy::emulator
