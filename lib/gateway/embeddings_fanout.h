// lib/gateway/embeddings_fanout.h: one embeddings attempt as several upstream calls
// (private to the engine). A provider declares how many inputs one call may carry
// (ProviderDialect::MaxEmbeddingInputsPerCall: Titan on Bedrock 1, Cohere 96, Gemini 100,
// OpenAI 2048); a request with more is split into consecutive slices of at most that many,
// each built and signed as its own call, run at most `max_concurrency` at a time, and the
// answers merged in input order:
//   - data: every slice's vectors, re-indexed 0..n-1 in input order;
//   - usage: the sum of the slices' counts when every slice reported one; otherwise absent
//     (the engine then counts the whole request, usage.h);
//   - model and unknown members: the first slice's.
// The first failing slice (transport error, non-2xx, unusable body) fails the whole attempt
// with that slice's error as the provider mapped it (a 429's retry-after kept, through
// TranslateError); the calls still running are cancelled and no later answer is read.
// Thread safety: thread-hostile; loop thread only.
#ifndef MODEENVOY_LIB_GATEWAY_EMBEDDINGS_FANOUT_H_
#define MODEENVOY_LIB_GATEWAY_EMBEDDINGS_FANOUT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modeenvoy/gateway/http.h"
#include "modeenvoy/gateway/provider.h"
#include "modeenvoy/gateway/upstream.h"
#include "modeenvoy/protocol/embeddings.h"

namespace modeenvoy::gateway_internal {

// Inputs [begin, begin + count) of `request` as a request of their own (same model,
// encoding, dimensions, user and unknown members). A single text stays kText, a single
// token array kTokens. REQUIRES: begin + count <= request.input_count(), count >= 1.
EmbeddingsRequest SliceEmbeddingsRequest(const EmbeddingsRequest& request, size_t begin,
                                         size_t count);

// The slices' answers, in input order, merged as the header comment says.
EmbeddingsResponse MergeEmbeddingsResponses(std::vector<EmbeddingsResponse> parts);

// One slice to send: its request (built, header-edited and signed by the caller) and the
// slice it asks for (read back with TranslateEmbeddingsResponse).
struct EmbeddingsSlice {
  UpstreamRequest request;
  EmbeddingsRequest slice;
};

struct EmbeddingsFanOutResult {
  // OK: `response` holds the merged answer. Else the failing slice's error, mapped.
  absl::Status status;
  // The failing slice's HTTP status (0 when it failed before or without a status line); the
  // first slice's (2xx) on success.
  int http_status = 0;
  // The first slice's response headers, hop-by-hop ones removed (on success).
  HttpHeaders headers;
  EmbeddingsResponse response;
};

// What a fan-out reports to its owner. Both methods may destroy the fan-out; it touches
// nothing of itself after calling them.
class EmbeddingsFanOutHost {
 public:
  virtual ~EmbeddingsFanOutHost() = default;
  // `bytes` more response bytes arrived (`total` so far, all slices). Returning false means
  // the host ended the fan-out (and destroyed it).
  virtual bool OnFanOutBytes(uint64_t bytes, uint64_t total) = 0;
  // Runs once, unless the fan-out is destroyed first.
  virtual void OnFanOutDone(EmbeddingsFanOutResult result) = 0;
};

class EmbeddingsFanOut {
 public:
  // `client`, `dialect` and `host` are not owned and must outlive the fan-out (the host may
  // destroy it from its callbacks). `provider_name` names the provider in transport-error
  // messages. REQUIRES: slices non-empty, max_concurrency >= 1.
  EmbeddingsFanOut(UpstreamClient* client, const ProviderDialect* dialect,
                   std::string upstream_model, std::string provider_name,
                   std::vector<EmbeddingsSlice> slices, size_t max_concurrency,
                   EmbeddingsFanOutHost* host);
  // Cancels every call still in flight; the host hears nothing more.
  ~EmbeddingsFanOut();
  EmbeddingsFanOut(const EmbeddingsFanOut&) = delete;
  EmbeddingsFanOut& operator=(const EmbeddingsFanOut&) = delete;

  // Starts the first max_concurrency calls; the others start as calls finish.
  void Start();

  // Calls started so far (for tests and logs).
  size_t started() const { return next_; }

 private:
  class Part;
  void StartNext();
  void PartData(size_t bytes);
  // One slice finished; `index` its position.
  void PartDone(size_t index, absl::Status status, int http_status, HttpHeaders headers,
                std::string body);
  void Fail(absl::Status status, int http_status);

  UpstreamClient* const client_;
  const ProviderDialect* const dialect_;
  const std::string upstream_model_;
  const std::string provider_name_;
  std::vector<EmbeddingsSlice> slices_;
  const size_t max_concurrency_;
  EmbeddingsFanOutHost* const host_;
  std::vector<std::unique_ptr<Part>> parts_;
  std::vector<EmbeddingsResponse> answers_;
  HttpHeaders first_headers_;
  int first_status_ = 0;
  size_t next_ = 0;       // slices started
  size_t running_ = 0;    // calls in flight
  size_t completed_ = 0;  // slices answered
  uint64_t total_bytes_ = 0;
  bool done_ = false;
};

}  // namespace modeenvoy::gateway_internal

#endif  // MODEENVOY_LIB_GATEWAY_EMBEDDINGS_FANOUT_H_
