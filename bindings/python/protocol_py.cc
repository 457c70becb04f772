// bindings/python/protocol_py.cc: shims over include/modeenvoy/protocol/ for
// bindings/python/modeenvoy/protocol.py. Conversions only: bodies cross as bytes/str and
// JSON text; protocol.py builds the Pythonic API. The GIL is released while parsing and
// serializing, which never touch Python objects.
#include <Python.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "bindings/python/body_py.h"
#include "bindings/python/register.h"
#include "bindings/python/status_py.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/sse.h"

namespace py = pybind11;

namespace modeenvoy::python {
namespace {

ChatRequest ParseRequest(const py::handle& data, bool validate) {
  BodyView body(data);
  absl::StatusOr<ChatRequest> request;
  {
    py::gil_scoped_release release;
    request = ParseChatRequest(body.view(), {.validate = validate});
  }
  return ValueOrThrow(std::move(request));
}

std::string Serialize(const ChatRequest& request) {
  py::gil_scoped_release release;
  return SerializeChatRequest(request);
}

// Re-encodes a response body through the model: the result is the canonical JSON.
template <typename T>
py::str Normalize(const py::handle& data, absl::StatusOr<T> (*parse)(std::string_view),
                  std::string (*serialize)(const T&)) {
  BodyView body(data);
  absl::StatusOr<std::string> out;
  {
    py::gil_scoped_release release;
    absl::StatusOr<T> parsed = parse(body.view());
    if (parsed.ok()) {
      out = serialize(*parsed);
    } else {
      out = parsed.status();
    }
  }
  return ToStr(ValueOrThrow(std::move(out)));
}

std::optional<absl::StatusCode> CodeFromName(const std::string& name) {
  for (int i = 0; i <= 16; ++i) {
    const auto code = static_cast<absl::StatusCode>(i);
    if (absl::StatusCodeToString(code) == name) return code;
  }
  return std::nullopt;
}

py::tuple EventTuple(SseEvent& e) {
  py::object id = e.id.has_value() ? py::object(ToStr(*e.id)) : py::object(py::none());
  py::object retry = e.retry.has_value() ? py::object(py::int_(*e.retry)) : py::object(py::none());
  // SSE payloads are passed through unvalidated; decode leniently.
  PyObject* data = PyUnicode_DecodeUTF8(e.data.data(), static_cast<Py_ssize_t>(e.data.size()),
                                        "replace");
  PyObject* event = PyUnicode_DecodeUTF8(e.event.data(), static_cast<Py_ssize_t>(e.event.size()),
                                         "replace");
  if (data == nullptr || event == nullptr) {
    Py_XDECREF(data);
    Py_XDECREF(event);
    throw py::error_already_set();
  }
  return py::make_tuple(py::reinterpret_steal<py::str>(event),
                        py::reinterpret_steal<py::str>(data), id, retry);
}

py::list EventList(std::vector<SseEvent>& events) {
  py::list out;
  for (SseEvent& e : events) out.append(EventTuple(e));
  events.clear();
  return out;
}

}  // namespace
}  // namespace modeenvoy::python

void RegisterProtocol(pybind11::module_& m) {
  using namespace modeenvoy;          // NOLINT
  using namespace modeenvoy::python;  // NOLINT

  py::class_<ChatRequest>(m, "_ChatRequest",
                          "Native chat request (use modeenvoy.ChatRequest).")
      .def("to_json", [](const ChatRequest& r) { return ToStr(Serialize(r)); })
      .def("to_bytes", [](const ChatRequest& r) { return py::bytes(Serialize(r)); })
      .def("validate", [](const ChatRequest& r) { ThrowIfError(ValidateChatRequest(r)); })
      .def("copy", [](const ChatRequest& r) { return ChatRequest(r); })
      .def("__eq__", [](const ChatRequest& a, const ChatRequest& b) { return a == b; })
      .def_property(
          "model", [](const ChatRequest& r) { return r.model; },
          [](ChatRequest& r, std::string model) { r.model = std::move(model); })
      .def_property(
          "stream", [](const ChatRequest& r) { return r.stream; },
          [](ChatRequest& r, std::optional<bool> stream) { r.stream = stream; })
      .def_property_readonly("message_count",
                             [](const ChatRequest& r) { return r.messages.size(); })
      .def_property_readonly("message_roles", [](const ChatRequest& r) {
        std::vector<std::string> roles;
        roles.reserve(r.messages.size());
        for (const Message& msg : r.messages) roles.emplace_back(RoleName(msg.role));
        return roles;
      });

  m.def("_parse_chat_request", &ParseRequest, py::arg("data"), py::arg("validate") = true,
        "Parses a Chat Completions request body (str or bytes).");
  m.def(
      "_normalize_chat_completion",
      [](const py::handle& data) {
        return Normalize<ChatCompletion>(data, &ParseChatCompletion, &SerializeChatCompletion);
      },
      py::arg("data"));
  m.def(
      "_normalize_chat_completion_chunk",
      [](const py::handle& data) {
        return Normalize<ChatCompletionChunk>(data, &ParseChatCompletionChunk,
                                              &SerializeChatCompletionChunk);
      },
      py::arg("data"));

  // Errors: build a Status from Python values, or from an upstream response.
  m.def(
      "_openai_error_body",
      [](const std::string& code_name, const std::string& message,
         std::optional<std::string> param, int status_code, std::optional<std::string> error_code) {
        const absl::StatusCode code = CodeFromName(code_name).value_or(absl::StatusCode::kUnknown);
        absl::Status status(code == absl::StatusCode::kOk ? absl::StatusCode::kUnknown : code,
                            message);
        if (param.has_value()) {
          // Attach the path without re-prefixing the message.
          absl::Status with_param = FieldError(status.code(), *param, "x");
          with_param.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
            status.SetPayload(url, payload);
          });
        }
        status = WithHttpStatus(std::move(status), status_code);
        if (error_code.has_value()) status = WithErrorCode(std::move(status), *error_code);
        return ToStr(OpenAiErrorBody(status));
      },
      py::arg("code"), py::arg("message"), py::arg("param"), py::arg("status_code"),
      py::arg("error_code"));
  m.def(
      "_raise_upstream_error",
      [](int http_status, const py::handle& body) {
        BodyView view(body);
        absl::Status status = StatusFromUpstreamError(http_status, view.view());
        ThrowStatus(status);
      },
      py::arg("http_status"), py::arg("body"));
  m.def(
      "_upstream_error_code",
      [](int http_status, const py::handle& body) {
        BodyView view(body);
        return ErrorCode(StatusFromUpstreamError(http_status, view.view()));
      },
      py::arg("http_status"), py::arg("body"));

  // SSE.
  py::class_<SseParser>(m, "_SseParser")
      .def(py::init([](size_t max_event_bytes) {
             SseParserOptions options;
             options.max_event_bytes = max_event_bytes;
             return SseParser(options);
           }),
           py::arg("max_event_bytes") = SseParserOptions().max_event_bytes)
      .def(
          "feed",
          [](SseParser& parser, const py::handle& data) {
            BodyView view(data);
            std::vector<SseEvent> events;
            ThrowIfError(parser.Feed(view.view(), &events));
            return EventList(events);
          },
          py::arg("data"))
      .def("finish",
           [](SseParser& parser) {
             std::vector<SseEvent> events;
             ThrowIfError(parser.Finish(&events));
             return EventList(events);
           })
      .def_property_readonly("last_event_id",
                             [](const SseParser& p) { return p.last_event_id(); })
      .def_property_readonly("retry", [](const SseParser& p) { return p.retry(); });
  m.def(
      "_encode_sse_event",
      [](const py::handle& data, const std::string& event, std::optional<std::string> id,
         std::optional<int64_t> retry) {
        BodyView view(data);
        SseEvent e;
        e.data = std::string(view.view());
        e.event = event;
        e.id = std::move(id);
        e.retry = retry;
        return py::bytes(EncodeSseEvent(e));
      },
      py::arg("data"), py::arg("event") = "", py::arg("id") = py::none(),
      py::arg("retry") = py::none());
  m.attr("_SSE_DONE_DATA") = std::string(kSseDoneData);
  m.attr("_SSE_DONE_EVENT") = py::bytes(std::string(kSseDoneEvent));
}
