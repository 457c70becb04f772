// lib/gateway/embeddings_fanout.cc: see embeddings_fanout.h.
#include "lib/gateway/embeddings_fanout.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "lib/gateway/routing_internal.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy::gateway_internal {

EmbeddingsRequest SliceEmbeddingsRequest(const EmbeddingsRequest& request, size_t begin,
                                         size_t count) {
  EmbeddingsRequest out;
  out.model = request.model;
  out.encoding_format = request.encoding_format;
  out.dimensions = request.dimensions;
  out.user = request.user;
  out.extra = request.extra;
  if (request.is_text()) {
    out.texts.assign(request.texts.begin() + begin, request.texts.begin() + begin + count);
    out.input_kind = count == 1 && request.input_kind == EmbeddingInputKind::kText
                         ? EmbeddingInputKind::kText
                         : EmbeddingInputKind::kTexts;
  } else {
    out.tokens.assign(request.tokens.begin() + begin, request.tokens.begin() + begin + count);
    out.input_kind = count == 1 && request.input_kind == EmbeddingInputKind::kTokens
                         ? EmbeddingInputKind::kTokens
                         : EmbeddingInputKind::kTokenArrays;
  }
  return out;
}

EmbeddingsResponse MergeEmbeddingsResponses(std::vector<EmbeddingsResponse> parts) {
  EmbeddingsResponse out;
  if (parts.empty()) return out;
  out.model = std::move(parts[0].model);
  out.extra = std::move(parts[0].extra);
  size_t total = 0;
  bool all_usage = true;
  for (const EmbeddingsResponse& p : parts) {
    total += p.data.size();
    all_usage = all_usage && p.usage.has_value();
  }
  out.data.reserve(total);
  EmbeddingsUsage usage;
  for (EmbeddingsResponse& p : parts) {
    for (Embedding& e : p.data) {
      e.index = static_cast<int64_t>(out.data.size());
      out.data.push_back(std::move(e));
    }
    if (all_usage) {
      usage.prompt_tokens += p.usage->prompt_tokens;
      usage.total_tokens += p.usage->total_tokens;
    }
  }
  if (all_usage) out.usage = std::move(usage);
  return out;
}

// One slice's call: collects its answer and hands it to the fan-out.
class EmbeddingsFanOut::Part final : public UpstreamHandler {
 public:
  Part(EmbeddingsFanOut* owner, size_t index) : owner_(owner), index_(index) {}

  void Start(UpstreamRequest request) { call_ = owner_->client_->Start(std::move(request), this); }
  void Cancel() { call_.reset(); }

  void OnHeaders(int status, const HttpHeaders& headers) override {
    status_ = status;
    headers_ = headers;
  }
  void OnData(std::string_view chunk) override {
    body_.append(chunk);
    owner_->PartData(chunk.size());  // may destroy this part
  }
  void OnComplete(absl::Status status) override {
    call_.reset();
    owner_->PartDone(index_, std::move(status), status_, std::move(headers_), std::move(body_));
  }

 private:
  EmbeddingsFanOut* const owner_;
  const size_t index_;
  std::unique_ptr<UpstreamCall> call_;
  int status_ = 0;
  HttpHeaders headers_;
  std::string body_;
};

EmbeddingsFanOut::EmbeddingsFanOut(UpstreamClient* client, const ProviderDialect* dialect,
                                   std::string upstream_model, std::string provider_name,
                                   std::vector<EmbeddingsSlice> slices, size_t max_concurrency,
                                   EmbeddingsFanOutHost* host)
    : client_(client),
      dialect_(dialect),
      upstream_model_(std::move(upstream_model)),
      provider_name_(std::move(provider_name)),
      slices_(std::move(slices)),
      max_concurrency_(std::max<size_t>(max_concurrency, 1)),
      host_(host) {
  answers_.resize(slices_.size());
  parts_.resize(slices_.size());
}

EmbeddingsFanOut::~EmbeddingsFanOut() {
  done_ = true;
  for (std::unique_ptr<Part>& p : parts_) {
    if (p != nullptr) p->Cancel();
  }
}

void EmbeddingsFanOut::Start() {
  while (running_ < max_concurrency_ && next_ < slices_.size()) StartNext();
}

void EmbeddingsFanOut::StartNext() {
  const size_t i = next_++;
  ++running_;
  parts_[i] = std::make_unique<Part>(this, i);
  parts_[i]->Start(std::move(slices_[i].request));
}

void EmbeddingsFanOut::PartData(size_t bytes) {
  if (done_) return;
  total_bytes_ += bytes;
  (void)host_->OnFanOutBytes(bytes, total_bytes_);  // false: this fan-out is gone
}

void EmbeddingsFanOut::Fail(absl::Status status, int http_status) {
  done_ = true;
  for (std::unique_ptr<Part>& p : parts_) {
    if (p != nullptr) p->Cancel();  // the others: no answer is read any more
  }
  EmbeddingsFanOutResult result;
  result.status = std::move(status);
  result.http_status = http_status;
  host_->OnFanOutDone(std::move(result));  // may destroy this fan-out: nothing after
}

void EmbeddingsFanOut::PartDone(size_t index, absl::Status status, int http_status,
                                HttpHeaders headers, std::string body) {
  if (done_) return;
  --running_;
  if (!status.ok()) {
    // As a single call's transport error (gateway.cc HandleComplete).
    Fail(gateway_internal::UpstreamTransportError(provider_name_, status), 0);
    return;
  }
  if (http_status < 200 || http_status >= 300) {
    absl::Status error = dialect_->TranslateError(http_status, headers, body);
    if (error.ok()) error = absl::UnknownError("upstream error without a message");
    Fail(std::move(error), http_status);
    return;
  }
  const ProviderCall call{.upstream_model = upstream_model_};
  absl::StatusOr<EmbeddingsResponse> answer =
      dialect_->TranslateEmbeddingsResponse(slices_[index].slice, call, headers, body);
  if (!answer.ok()) {
    Fail(answer.status(), http_status);
    return;
  }
  answers_[index] = std::move(*answer);
  if (index == 0) {
    first_status_ = http_status;
    first_headers_ = std::move(headers);
    StripHopByHopHeaders(&first_headers_);
  }
  ++completed_;
  if (completed_ == slices_.size()) {
    done_ = true;
    EmbeddingsFanOutResult result;
    result.http_status = first_status_;
    result.headers = std::move(first_headers_);
    result.response = MergeEmbeddingsResponses(std::move(answers_));
    host_->OnFanOutDone(std::move(result));  // may destroy this fan-out: nothing after
    return;
  }
  if (next_ < slices_.size()) StartNext();
}

}  // namespace modeenvoy::gateway_internal
