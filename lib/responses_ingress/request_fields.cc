// lib/responses_ingress/request_fields.cc: see request_fields.h. Accepted values are those
// of the OpenAI Responses API reference (POST /v1/responses).
#include "lib/responses_ingress/request_fields.h"

#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "lib/core/json_reader.h"
#include "lib/core/status_macros.h"
#include "modeenvoy/status.h"

namespace modeenvoy::responses_ingress_internal {
namespace {

using core_internal::Json;

constexpr std::string_view kIncludable[] = {
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
};

absl::Status Bad(std::string_view path, std::string_view message) {
  return WithHttpStatus(InvalidFieldError(path, message), 400);
}

// `include`: what the client wants added to OpenAI's response object. The gateway's
// response object carries none of these extras (no encrypted reasoning, no hosted tool
// results), which is what a Responses client gets from a provider that produces none.
absl::Status CheckInclude(const Json& value) {
  if (value.is_null()) return absl::OkStatus();
  if (!value.is_array()) return Bad("include", "must be an array of strings");
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string path = absl::StrCat("include[", i, "]");
    if (!value[i].is_string()) return Bad(path, "must be a string");
    const std::string& v = value[i].get_ref<const std::string&>();
    bool known = false;
    for (std::string_view k : kIncludable) known = known || v == k;
    if (!known) {
      return Bad(path, absl::StrCat("unknown value \"", v,
                                    "\" (the Responses API's values: "
                                    "reasoning.encrypted_content, "
                                    "message.output_text.logprobs, ...)"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckStreamOptions(const Json& value) {
  if (value.is_null()) return absl::OkStatus();
  if (!value.is_object()) return Bad("stream_options", "must be an object");
  for (auto it = value.begin(); it != value.end(); ++it) {
    const std::string path = absl::StrCat("stream_options.", it.key());
    if (it.key() != "include_obfuscation") return Bad(path, "unknown field");
    if (!it->is_boolean()) return Bad(path, "must be a boolean");
  }
  return absl::OkStatus();
}

absl::Status CheckOneOf(std::string_view name, const Json& value, std::string_view a,
                        std::string_view b) {
  if (value.is_null()) return absl::OkStatus();
  if (value.is_string() && (value == a || value == b)) return absl::OkStatus();
  return Bad(name, absl::StrCat("must be \"", std::string(a), "\" or \"", std::string(b),
                                "\""));
}

// Checks member `name` of the request; sets `*keep` when it must stay in `extra`.
absl::Status CheckMember(std::string_view name, const Json& value, bool* keep) {
  *keep = false;
  if (name == "include") return CheckInclude(value);
  if (name == "client_metadata") {
    // Codex CLI's bookkeeping (installation id, ...): no API's model input.
    if (value.is_null() || value.is_object()) return absl::OkStatus();
    return Bad(name, "must be an object");
  }
  if (name == "stream_options") return CheckStreamOptions(value);
  if (name == "prompt_cache_retention") return CheckOneOf(name, value, "in_memory", "24h");
  if (name == "background") {
    if (value.is_null() || value == false) return absl::OkStatus();
    if (!value.is_boolean()) return Bad(name, "must be a boolean");
    return Bad(name,
               "background responses need a response store; this gateway answers within "
               "the request (leave background out or false)");
  }
  if (name == "truncation") {
    MODEENVOY_RETURN_IF_ERROR(CheckOneOf(name, value, "auto", "disabled"));
    *keep = value == "auto";
    return absl::OkStatus();
  }
  *keep = true;  // not one of these: the provider's to take or refuse
  return absl::OkStatus();
}

}  // namespace

absl::Status TakeResponsesOnlyFields(ChatRequest* chat) {
  ExtraFields kept;
  kept.reserve(chat->extra.size());
  for (auto& [key, raw] : chat->extra) {
    // The dialect captured `raw` from the parsed body: it is valid JSON.
    const Json value = Json::parse(raw, nullptr, /*allow_exceptions=*/false);
    bool keep = true;
    MODEENVOY_RETURN_IF_ERROR(CheckMember(key, value, &keep));
    if (keep) kept.emplace_back(std::move(key), std::move(raw));
  }
  chat->extra = std::move(kept);
  return absl::OkStatus();
}

absl::Status CheckResponsesOnlyFields(const ChatRequest& chat,
                                      std::string_view provider_type) {
  if (provider_type == "openai_responses") return absl::OkStatus();
  for (const auto& [key, raw] : chat.extra) {
    if (key != "truncation") continue;
    return Bad("truncation",
               absl::StrCat("\"auto\" (drop the oldest input when it does not fit) is done "
                            "only by an OpenAI Responses provider; this request's provider "
                            "is of type \"",
                            std::string(provider_type),
                            "\" (send \"disabled\" or leave truncation out)"));
  }
  return absl::OkStatus();
}

}  // namespace modeenvoy::responses_ingress_internal
