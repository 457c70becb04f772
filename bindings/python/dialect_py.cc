// bindings/python/dialect_py.cc: shims over include/modeenvoy/protocol/dialect.h for
// bindings/python/modeenvoy/translate.py: request, response and stream translation between
// provider dialects, through the unified (OpenAI Chat Completions) form. Bodies cross as
// str/bytes and JSON text; the GIL is released while translating.
#include <Python.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bindings/python/body_py.h"
#include "bindings/python/register.h"
#include "bindings/python/status_py.h"
#include "modeenvoy/protocol/bad_upstream.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/framing.h"
#include "modeenvoy/protocol/sse.h"

namespace py = pybind11;

namespace modeenvoy::python {
namespace {

std::unique_ptr<Dialect> MakeDialect(const std::string& name, const std::string& options) {
  return ValueOrThrow(NewDialect(name, options.empty() ? "{}" : options));
}

// source request body -> target request body (JSON text).
absl::StatusOr<std::string> TranslateRequest(const Dialect& source, const Dialect& target,
                                             std::string_view body, const std::string& path,
                                             const std::optional<std::string>& model,
                                             std::optional<bool> stream) {
  WireRequest in;
  in.target = path;
  in.body = std::string(body);
  absl::StatusOr<ChatRequest> chat = source.DecodeRequest(in);
  if (!chat.ok()) return chat.status();
  if (chat->model.empty() && model.has_value()) chat->model = *model;
  if (stream.has_value()) chat->stream = *stream;
  WireRequest out;
  DialectCall call;
  call.stream = chat->stream.value_or(false);
  if (model.has_value()) call.model = *model;
  absl::Status s = target.EncodeRequest(*chat, call, &out);
  if (!s.ok()) return s;
  return std::move(out.body);
}

// source response body -> target response body (JSON text).
absl::StatusOr<std::string> TranslateResponse(const Dialect& source, const Dialect& target,
                                              std::string_view body) {
  std::string unified(body);
  // As the gateway answers it: an unreadable answer is the upstream's failure (502).
  absl::Status s = AsBadUpstreamResponse(source.DecodeResponse(&unified));
  if (!s.ok()) return s;
  absl::StatusOr<ChatCompletion> completion = ParseChatCompletion(unified);
  if (!completion.ok()) return completion.status();
  return target.EncodeResponse(*completion);
}

// An upstream stream in `source`'s framing re-encoded as `target`'s stream. A provider
// error inside the stream becomes the target's error event and ends the stream; bytes that
// cannot be read raise, with the output of the same call's earlier frames as the error's
// partial_output (so the output is the same however the input was split).
class NativeStreamTranslator {
 public:
  NativeStreamTranslator(const std::string& source, const std::string& target,
                         const std::string& source_options, const std::string& target_options)
      : source_(MakeDialect(source, source_options)),
        target_(MakeDialect(target, target_options)),
        parser_(ValueOrThrow(NewFrameParser(source_->ResponseFraming(/*stream=*/true)))),
        decoder_(source_->NewStreamDecoder()),
        encoder_(target_->NewStreamEncoder()) {}

  py::bytes Feed(const py::handle& data) {
    BodyView body(data);
    std::string out;
    absl::Status status;
    {
      py::gil_scoped_release release;
      status = Step(body.view(), /*finish=*/false, &out);
    }
    // What the frames before the failure produced is the caller's: it goes with the error.
    if (!status.ok()) ThrowStatus(status, out);
    return py::bytes(out);
  }

  py::bytes Finish() {
    std::string out;
    absl::Status status;
    {
      py::gil_scoped_release release;
      status = Step({}, /*finish=*/true, &out);
    }
    if (!status.ok()) ThrowStatus(status, out);
    return py::bytes(out);
  }

 private:
  absl::Status Step(std::string_view bytes, bool finish, std::string* out) {
    if (!failure_.ok()) return failure_;
    if (ended_) {
      if (bytes.empty()) return absl::OkStatus();
      return Fail(absl::FailedPreconditionError("the stream already ended"));
    }
    frames_.clear();
    // The frames completed before a framing error are translated first: fed byte by byte
    // they would have come out of earlier calls.
    const absl::Status framing =
        finish ? parser_->Finish(&frames_) : parser_->Feed(bytes, &frames_);
    absl::Status s;
    for (StreamFrame& frame : frames_) {
      events_.clear();
      s = decoder_->Translate(std::move(frame), &events_);
      if (s.ok()) s = EncodeEvents(out);
      if (!s.ok()) return EndOrFail(s, out);
    }
    if (!framing.ok()) return Fail(framing);
    if (!finish) return absl::OkStatus();
    events_.clear();
    s = decoder_->Finish(&events_);
    if (s.ok()) s = EncodeEvents(out);
    if (!s.ok()) return EndOrFail(s, out);
    ended_ = true;
    s = encoder_->Finish(out);
    return s.ok() ? s : Fail(s);
  }

  absl::Status EncodeEvents(std::string* out) {
    for (const SseEvent& event : events_) {
      if (event.data == kSseDoneData) continue;  // the target's Finish writes its own end
      absl::StatusOr<ChatCompletionChunk> chunk = ParseChatCompletionChunk(event.data);
      if (!chunk.ok()) return chunk.status();
      absl::Status s = encoder_->Encode(*chunk, out);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // The provider's own error is passed on as the target's error event; anything else is a
  // failure to read the stream.
  absl::Status EndOrFail(const absl::Status& status, std::string* out) {
    if (!IsProviderError(status)) return Fail(status);
    encoder_->EncodeError(status, out);
    ended_ = true;
    return absl::OkStatus();
  }

  absl::Status Fail(absl::Status status) {
    failure_ = status;
    return status;
  }

  std::unique_ptr<Dialect> source_;
  std::unique_ptr<Dialect> target_;
  std::unique_ptr<FrameParser> parser_;
  std::unique_ptr<StreamTranslator> decoder_;
  std::unique_ptr<StreamEncoder> encoder_;
  std::vector<StreamFrame> frames_;
  std::vector<SseEvent> events_;
  absl::Status failure_;
  bool ended_ = false;
};

}  // namespace
}  // namespace modeenvoy::python

void RegisterDialects(pybind11::module_& m) {
  using namespace modeenvoy;          // NOLINT
  using namespace modeenvoy::python;  // NOLINT

  m.def("_dialect_names", [] {
    std::vector<std::string> names;
    for (std::string_view name : DialectNames()) names.emplace_back(name);
    return names;
  });
  m.def(
      "_translate_request",
      [](const py::handle& data, const std::string& source, const std::string& target,
         const std::string& source_options, const std::string& target_options,
         const std::string& path, std::optional<std::string> model,
         std::optional<bool> stream) {
        std::unique_ptr<Dialect> from = MakeDialect(source, source_options);
        std::unique_ptr<Dialect> to = MakeDialect(target, target_options);
        BodyView body(data);
        absl::StatusOr<std::string> out;
        {
          py::gil_scoped_release release;
          out = TranslateRequest(*from, *to, body.view(), path, model, stream);
        }
        return ToStr(ValueOrThrow(std::move(out)));
      },
      py::arg("data"), py::arg("source"), py::arg("target"), py::arg("source_options"),
      py::arg("target_options"), py::arg("path"), py::arg("model"), py::arg("stream"));
  m.def(
      "_translate_response",
      [](const py::handle& data, const std::string& source, const std::string& target,
         const std::string& source_options, const std::string& target_options) {
        std::unique_ptr<Dialect> from = MakeDialect(source, source_options);
        std::unique_ptr<Dialect> to = MakeDialect(target, target_options);
        BodyView body(data);
        absl::StatusOr<std::string> out;
        {
          py::gil_scoped_release release;
          out = TranslateResponse(*from, *to, body.view());
        }
        return ToStr(ValueOrThrow(std::move(out)));
      },
      py::arg("data"), py::arg("source"), py::arg("target"), py::arg("source_options"),
      py::arg("target_options"));
  py::class_<NativeStreamTranslator>(m, "_StreamTranslator")
      .def(py::init<const std::string&, const std::string&, const std::string&,
                    const std::string&>(),
           py::arg("source"), py::arg("target"), py::arg("source_options"),
           py::arg("target_options"))
      .def("feed", &NativeStreamTranslator::Feed, py::arg("data"))
      .def("finish", &NativeStreamTranslator::Finish);
}
