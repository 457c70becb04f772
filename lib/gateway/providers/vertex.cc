// lib/gateway/providers/vertex.cc: the provider types "gemini" and "vertex" (the protocol
// dialects of lib/protocol/dialects/gemini.cc) with what only the host can add:
//  - both: a 429/503 whose Google error body says when to retry (google.rpc.RetryInfo
//    "retryDelay": "34.4s") reaches the client as retry-after (rounded up to whole seconds)
//    unless the upstream sent a retry-after header itself;
//  - vertex: option `token_file`, a file holding an OAuth2 access token (as a metadata-server
//    sidecar or `gcloud auth print-access-token > file` writes it), sent as
//    "authorization: Bearer <token>". The file is stat()ed on every request and re-read when
//    its modification time, size or inode changed, so a refreshed token is used at once
//    without a reload. Without token_file, api_key / api_key_env is the bearer token.
#include <sys/stat.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "lib/core/json_reader.h"
#include "lib/core/mutex.h"
#include "lib/core/status_macros.h"
#include "lib/gateway/providers/providers.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/gateway/provider.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "nlohmann/json.hpp"

namespace modeenvoy::gateway_internal {
namespace {

using core_internal::Json;

// Seconds of a RetryInfo.retryDelay in a Google error body ({"error":{"details":[...]}}, or
// that object wrapped in an array), rounded up; nullopt when there is none.
std::optional<int64_t> RetryDelaySeconds(std::string_view body) {
  Json j = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_array() && !j.empty()) j = j[0];
  if (!j.is_object()) return std::nullopt;
  auto error = j.find("error");
  if (error == j.end() || !error->is_object()) return std::nullopt;
  auto details = error->find("details");
  if (details == error->end() || !details->is_array()) return std::nullopt;
  for (const Json& d : *details) {
    if (!d.is_object()) continue;
    auto type = d.find("@type");
    auto delay = d.find("retryDelay");
    if (type == d.end() || !type->is_string() || delay == d.end() || !delay->is_string()) {
      continue;
    }
    if (!absl::EndsWith(type->get<std::string>(), "google.rpc.RetryInfo")) continue;
    std::string text = delay->get<std::string>();
    if (text.empty() || text.back() != 's') continue;
    text.pop_back();
    double seconds = 0;
    if (!absl::SimpleAtod(text, &seconds) || !(seconds >= 0) || seconds > 86400 * 7) continue;
    return static_cast<int64_t>(std::ceil(seconds));
  }
  return std::nullopt;
}

// A bearer token kept in a file, re-read when the file changes.
// Thread safety: thread-safe.
class TokenFile {
 public:
  explicit TokenFile(std::string path) : path_(std::move(path)) {}

  // The current token. Errors: kUnavailable when the file cannot be read or is empty (a
  // sidecar may be rewriting it: the attempt may be retried).
  absl::StatusOr<std::string> Token() const ABSL_LOCKS_EXCLUDED(mu_) {
    struct stat st;
    if (::stat(path_.c_str(), &st) != 0) {
      return absl::UnavailableError("vertex token_file \"" + path_ + "\": cannot stat");
    }
    core_internal::MutexLock lock(&mu_);
    const bool same = loaded_ && st.st_mtim.tv_sec == mtime_.tv_sec &&
                      st.st_mtim.tv_nsec == mtime_.tv_nsec && st.st_size == size_ &&
                      st.st_ino == inode_;
    if (same) return token_;
    std::ifstream in(path_, std::ios::binary);
    if (!in) return absl::UnavailableError("vertex token_file \"" + path_ + "\": cannot read");
    std::ostringstream text;
    text << in.rdbuf();
    std::string token(absl::StripAsciiWhitespace(text.str()));
    if (token.empty() || token.find_first_of("\r\n") != std::string::npos) {
      return absl::UnavailableError("vertex token_file \"" + path_ +
                                    "\": must hold one access token");
    }
    token_ = std::move(token);
    mtime_ = st.st_mtim;
    size_ = st.st_size;
    inode_ = st.st_ino;
    loaded_ = true;
    return token_;
  }

 private:
  const std::string path_;
  mutable absl::Mutex mu_;
  mutable bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  mutable std::string token_ ABSL_GUARDED_BY(mu_);
  mutable timespec mtime_ ABSL_GUARDED_BY(mu_) = {};
  mutable off_t size_ ABSL_GUARDED_BY(mu_) = 0;
  mutable ino_t inode_ ABSL_GUARDED_BY(mu_) = 0;
};

class GoogleProvider final : public ProviderDialect {
 public:
  GoogleProvider(std::unique_ptr<ProviderDialect> inner, std::unique_ptr<TokenFile> token_file)
      : inner_(std::move(inner)), token_file_(std::move(token_file)) {}

  absl::Status BuildRequest(const ChatRequest& chat, const ProviderCall& call,
                            UpstreamRequest* out) const override {
    MODEENVOY_RETURN_IF_ERROR(inner_->BuildRequest(chat, call, out));
    return ApplyTokenFile(out);
  }
  absl::Status BuildEmbeddingsRequest(const EmbeddingsRequest& request, const ProviderCall& call,
                                      UpstreamRequest* out) const override {
    MODEENVOY_RETURN_IF_ERROR(inner_->BuildEmbeddingsRequest(request, call, out));
    return ApplyTokenFile(out);
  }
  absl::StatusOr<EmbeddingsResponse> TranslateEmbeddingsResponse(
      const EmbeddingsRequest& request, const ProviderCall& call, const HttpHeaders& headers,
      std::string_view body) const override {
    return inner_->TranslateEmbeddingsResponse(request, call, headers, body);
  }
  size_t MaxEmbeddingInputsPerCall(const EmbeddingsRequest& request,
                                   const ProviderCall& call) const override {
    return inner_->MaxEmbeddingInputsPerCall(request, call);
  }
  absl::Status Sign(UpstreamRequest* request) const override { return inner_->Sign(request); }
  Framing ResponseFraming(bool stream) const override { return inner_->ResponseFraming(stream); }
  absl::Status TranslateResponse(std::string* body) const override {
    return inner_->TranslateResponse(body);
  }
  std::unique_ptr<StreamTranslator> NewStreamTranslator() const override {
    return inner_->NewStreamTranslator();
  }
  absl::Status TranslateError(int http_status, const HttpHeaders& headers,
                              std::string_view body) const override {
    absl::Status status = inner_->TranslateError(http_status, headers, body);
    HttpHeaders kept = ErrorHeaders(status);
    for (const auto& [name, value] : kept) {
      if (absl::EqualsIgnoreCase(core_internal::ToAbsl(name), "retry-after")) return status;
    }
    std::optional<int64_t> delay = RetryDelaySeconds(body);
    if (!delay.has_value()) return status;
    kept.emplace_back("retry-after", std::to_string(*delay));
    return WithErrorHeaders(std::move(status), kept);
  }

 private:
  absl::Status ApplyTokenFile(UpstreamRequest* out) const {
    if (token_file_ != nullptr) {
      MODEENVOY_ASSIGN_OR_RETURN(std::string token, token_file_->Token());
      ApplyHeaderMutation({HeaderMutation::Op::kSet, "authorization", "Bearer " + token},
                          &out->headers);
    }
    return absl::OkStatus();
  }

  const std::unique_ptr<ProviderDialect> inner_;
  const std::unique_ptr<TokenFile> token_file_;
};

absl::StatusOr<std::unique_ptr<ProviderDialect>> Build(const ProviderConfig& common,
                                                       std::string_view options_json,
                                                       bool vertex) {
  MODEENVOY_ASSIGN_OR_RETURN(Json options, core_internal::ParseStrictJson(options_json));
  if (!options.is_object()) return InvalidFieldError("", "options must be an object");
  std::unique_ptr<TokenFile> token_file;
  if (vertex) {
    if (auto it = options.find("token_file"); it != options.end()) {
      if (!it->is_string() || it->get<std::string>().empty()) {
        return InvalidFieldError("token_file", "must be a non-empty path");
      }
      if (!common.api_key.empty()) {
        return InvalidFieldError("token_file", "conflicts with api_key / api_key_env (both "
                                               "would be the bearer token)");
      }
      token_file = std::make_unique<TokenFile>(it->get<std::string>());
      options.erase(it);
    }
    if (!options.contains("project")) {
      return InvalidFieldError("project", "is required (the Google Cloud project id)");
    }
  }
  MODEENVOY_ASSIGN_OR_RETURN(std::unique_ptr<Dialect> dialect,
                             NewDialect(vertex ? "vertex" : "gemini", options.dump()));
  MODEENVOY_ASSIGN_OR_RETURN(std::unique_ptr<ProviderDialect> inner,
                             WrapDialect(common, std::move(dialect)));
  if (token_file != nullptr) {
    // Fail at load when the file is unreadable now (a typo in the path); later failures
    // are per request.
    absl::Status readable = token_file->Token().status();
    if (!readable.ok()) return InvalidFieldError("token_file", std::string(readable.message()));
  }
  return std::make_unique<GoogleProvider>(std::move(inner), std::move(token_file));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ProviderDialect>> BuildGeminiProvider(
    const ProviderConfig& common, std::string_view options_json, const BuildContext& /*ctx*/) {
  return Build(common, options_json, /*vertex=*/false);
}

absl::StatusOr<std::unique_ptr<ProviderDialect>> BuildVertexProvider(
    const ProviderConfig& common, std::string_view options_json, const BuildContext& /*ctx*/) {
  return Build(common, options_json, /*vertex=*/true);
}

}  // namespace modeenvoy::gateway_internal
