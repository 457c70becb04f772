// tests/fuzz/embeddings_fuzzer.cc: libFuzzer target for the embeddings model
// (protocol/embeddings.h) and the embedding dialects' readers of provider bytes.
//   build-fuzz/tests/fuzz/embeddings_fuzzer -max_total_time=60 corpus/
// Seeds: tests/fuzz/corpus/embeddings_fuzzer/ plus, in scripts/run_fuzzers.sh, the recorded
// OpenAI and Cohere embeddings responses of the provider fixtures when present.
// Checks, for any input:
//  - ParseEmbeddingsRequest never crashes; an error is kInvalidArgument with a message;
//    a parsed request serializes to a body that parses to an equal request and serializes
//    again to the same bytes (embeddings.h: Parse(Serialize(x)) == x);
//  - ParseEmbeddingsResponse never crashes; an error is kInvalidArgument with a message;
//    a parsed response serialized as floats and as base64 parses again, with the same
//    indices and the same float32 values (non-finite values, which JSON cannot carry, are
//    written as 0), and the float body is a fixed point;
//  - each embedding dialect's DecodeEmbeddingsResponse never crashes, and what it returns
//    has one vector per input, indexed 0..n-1, and serializes to a parseable body.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/embeddings.h"

namespace {

using namespace modeenvoy;  // NOLINT

#define FUZZ_CHECK(cond)                                                                  \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      __builtin_fprintf(stderr, "check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

// A refusal is a 400 with a message (a field path when one field is at fault; a body that
// is not a JSON object has none).
void CheckError(const absl::Status& status) {
  FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument);
  FUZZ_CHECK(!status.message().empty());
}

// The float32 values of `e` (base64 text decoded); false if that text is not valid.
bool Values(const Embedding& e, std::vector<float>* out) {
  if (const auto* floats = std::get_if<std::vector<float>>(&e.embedding)) {
    *out = *floats;
    return true;
  }
  absl::StatusOr<std::vector<float>> decoded =
      DecodeEmbeddingBase64(std::get<std::string>(e.embedding));
  if (!decoded.ok()) return false;
  *out = std::move(*decoded);
  return true;
}

// `after` is `before` written as JSON floats (or as base64) and read back.
void CheckSameVectors(const EmbeddingsResponse& before, const EmbeddingsResponse& after) {
  FUZZ_CHECK(before.data.size() == after.data.size());
  for (size_t i = 0; i < before.data.size(); ++i) {
    FUZZ_CHECK(before.data[i].index == after.data[i].index);
    std::vector<float> a;
    std::vector<float> b;
    FUZZ_CHECK(Values(before.data[i], &a));
    FUZZ_CHECK(Values(after.data[i], &b));
    FUZZ_CHECK(a.size() == b.size());
    for (size_t j = 0; j < a.size(); ++j) {
      if (std::isfinite(a[j])) {
        FUZZ_CHECK(a[j] == b[j]);
      }
    }
  }
  FUZZ_CHECK(before.usage.has_value() == after.usage.has_value());
}

void CheckRequest(std::string_view input) {
  absl::StatusOr<EmbeddingsRequest> first = ParseEmbeddingsRequest(input);
  if (!first.ok()) {
    CheckError(first.status());
    return;
  }
  FUZZ_CHECK(first->input_count() >= 1 && first->input_count() <= kMaxEmbeddingInputs);
  const std::string wire = SerializeEmbeddingsRequest(*first);
  absl::StatusOr<EmbeddingsRequest> second = ParseEmbeddingsRequest(wire);
  FUZZ_CHECK(second.ok());
  FUZZ_CHECK(*first == *second);
  FUZZ_CHECK(SerializeEmbeddingsRequest(*second) == wire);
}

// `response` serialized both ways parses back to the same vectors.
void CheckSerializes(const EmbeddingsResponse& response) {
  const std::string floats = SerializeEmbeddingsResponse(response, EmbeddingEncoding::kFloat);
  absl::StatusOr<EmbeddingsResponse> from_floats = ParseEmbeddingsResponse(floats);
  FUZZ_CHECK(from_floats.ok());
  CheckSameVectors(response, *from_floats);
  FUZZ_CHECK(SerializeEmbeddingsResponse(*from_floats, EmbeddingEncoding::kFloat) == floats);
  const std::string base64 = SerializeEmbeddingsResponse(response, EmbeddingEncoding::kBase64);
  absl::StatusOr<EmbeddingsResponse> from_base64 = ParseEmbeddingsResponse(base64);
  FUZZ_CHECK(from_base64.ok());
  CheckSameVectors(response, *from_base64);
}

void CheckResponse(std::string_view input) {
  absl::StatusOr<EmbeddingsResponse> parsed = ParseEmbeddingsResponse(input);
  if (!parsed.ok()) {
    CheckError(parsed.status());
    return;
  }
  std::vector<float> unused;
  for (const Embedding& e : parsed->data) FUZZ_CHECK(Values(e, &unused));
  CheckSerializes(*parsed);
}

struct DecoderCase {
  const Dialect* dialect;
  std::string model;
};

const std::vector<DecoderCase>& Decoders() {
  static const auto* cases = [] {
    auto* out = new std::vector<DecoderCase>;
    const std::pair<const char*, const char*> named[] = {
        {"openai", "text-embedding-3-small"},
        {"gemini", "gemini-embedding-001"},
        {"bedrock", "amazon.titan-embed-text-v2:0"},
        {"bedrock", "cohere.embed-english-v3"},
        {"cohere", "embed-v4.0"},
        {"ollama", "nomic-embed-text"},
    };
    for (const auto& n : named) {
      absl::StatusOr<std::unique_ptr<Dialect>> d = NewDialect(n.first);
      FUZZ_CHECK(d.ok());
      out->push_back({d->release(), n.second});
    }
    return out;
  }();
  return *cases;
}

void CheckDecoders(std::string_view input) {
  EmbeddingsRequest request;
  request.input_kind = EmbeddingInputKind::kTexts;
  // 1..3 inputs (the Titan case always one), chosen by the input's length.
  const size_t inputs = 1 + input.size() % 3;
  for (const DecoderCase& c : Decoders()) {
    request.model = c.model;
    const bool titan = c.model.rfind("amazon.titan", 0) == 0;
    request.texts.assign(titan ? 1 : inputs, "text");
    DialectCall call;
    call.model = c.model;
    absl::StatusOr<EmbeddingsResponse> got =
        c.dialect->DecodeEmbeddingsResponse(input, request, call);
    if (!got.ok()) continue;
    FUZZ_CHECK(got->data.size() == request.texts.size());
    for (size_t i = 0; i < got->data.size(); ++i) {
      FUZZ_CHECK(got->data[i].index == static_cast<int64_t>(i));
    }
    CheckSerializes(*got);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  CheckRequest(input);
  CheckResponse(input);
  CheckDecoders(input);
  return 0;
}
