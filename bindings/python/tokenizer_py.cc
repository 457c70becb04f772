// bindings/python/tokenizer_py.cc: shims over include/modeenvoy/tokenizer/ for
// bindings/python/modeenvoy/tokenizer.py. Conversions only; the GIL is released around every
// encode/count so other Python threads run while we tokenize.
#include <Python.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bindings/python/register.h"
#include "bindings/python/status_py.h"
#include "modeenvoy/tokenizer/encoding.h"
#include "modeenvoy/tokenizer/model.h"

namespace py = pybind11;

namespace modeenvoy::python {
namespace {

// UTF-8 view of a str, valid while `s` lives. Raises UnicodeEncodeError for lone surrogates
// (tokenizer.py then repairs the text as tiktoken does).
std::string_view Utf8View(const py::handle& s) {
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(s.ptr(), &size);
  if (data == nullptr) throw py::error_already_set();
  return std::string_view(data, static_cast<size_t>(size));
}

// Python int objects for every token id of one encoding, built when it is loaded. Ints are
// immutable, so lists can share them: building a result list is then one reference-count
// increment per token instead of an int allocation (what dominates encode() from Python).
class IntTable {
 public:
  explicit IntTable(uint32_t size) : size_(size) {}
  ~IntTable() {
    if (!ints_.empty() && Py_IsInitialized()) {
      for (PyObject* o : ints_) Py_XDECREF(o);
    }
  }
  // REQUIRES: the GIL is held.
  void Build() {
    if (!ints_.empty()) return;
    ints_.resize(size_);
    for (uint32_t i = 0; i < size_; ++i) {
      ints_[i] = PyLong_FromUnsignedLong(i);
      if (ints_[i] == nullptr) throw py::error_already_set();
    }
  }
  // REQUIRES: the GIL is held.
  py::list ToList(const std::vector<Token>& tokens) {
    Build();
    PyObject* list = PyList_New(static_cast<Py_ssize_t>(tokens.size()));
    if (list == nullptr) throw py::error_already_set();
    // Each token's int sits somewhere in megabytes of objects, and the reference-count
    // increment must read its line: fetch the table entry 16 tokens ahead and the object 8
    // ahead, so the misses overlap instead of queuing one per token.
    const size_t n = tokens.size();
    auto int_of = [&](size_t i) -> PyObject* {
      const Token t = tokens[i];
      return t < size_ ? ints_[t] : nullptr;
    };
    for (size_t i = 0; i < n; ++i) {
      if (i + 16 < n && tokens[i + 16] < size_) __builtin_prefetch(&ints_[tokens[i + 16]]);
      if (i + 8 < n) {
        if (PyObject* ahead = int_of(i + 8)) __builtin_prefetch(ahead, 1);
      }
      PyObject* v = int_of(i);
      if (v != nullptr) {
        Py_INCREF(v);
      } else {
        v = PyLong_FromUnsignedLong(tokens[i]);
        if (v == nullptr) {
          Py_DECREF(list);
          throw py::error_already_set();
        }
      }
      PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), v);
    }
    return py::reinterpret_steal<py::list>(list);
  }

 private:
  uint32_t size_;
  std::vector<PyObject*> ints_;
};

// Token ids from any iterable of integers: Python ints, or anything with __index__ (numpy
// integers and arrays), as tiktoken accepts. Negative or over 32 bits: OverflowError.
std::vector<Token> ToTokens(const py::iterable& tokens) {
  std::vector<Token> out;
  if (PyList_Check(tokens.ptr()) || PyTuple_Check(tokens.ptr())) {
    out.reserve(static_cast<size_t>(PySequence_Size(tokens.ptr())));
  }
  for (py::handle h : tokens) {
    unsigned long v;
    if (PyLong_Check(h.ptr())) {
      v = PyLong_AsUnsignedLong(h.ptr());
    } else {
      py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
      if (!index) throw py::error_already_set();
      v = PyLong_AsUnsignedLong(index.ptr());
    }
    if (v == static_cast<unsigned long>(-1) && PyErr_Occurred()) throw py::error_already_set();
    if (v > 0xffffffffUL) {
      PyErr_SetString(PyExc_OverflowError, "token id does not fit in 32 bits");
      throw py::error_already_set();
    }
    out.push_back(static_cast<Token>(v));
  }
  return out;
}

SpecialTokenSet ToSet(bool all, const std::vector<std::string>& tokens) {
  if (all) return SpecialTokenSet::All();
  return SpecialTokenSet(tokens);
}

// Keeps the str objects alive (and their UTF-8 buffers) while the GIL is released.
struct TextBatch {
  std::vector<py::object> owners;
  std::vector<std::string_view> views;
  explicit TextBatch(const py::iterable& texts) {
    for (py::handle h : texts) {
      owners.push_back(py::reinterpret_borrow<py::object>(h));
      views.push_back(Utf8View(h));
    }
  }
};

// Token ids owned by a Python object that exposes them through the buffer protocol
// (format "I", read-only, one dimension): numpy.frombuffer and memoryview read them in
// place, without the copy into bytes or the per-token ints of a list.
class TokenArray {
 public:
  explicit TokenArray(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}
  size_t size() const { return tokens_.size(); }
  py::buffer_info Buffer() {
    static_assert(sizeof(Token) == sizeof(unsigned int));
    return py::buffer_info(tokens_.data(), sizeof(Token), py::format_descriptor<unsigned int>::format(),
                           1, {static_cast<py::ssize_t>(tokens_.size())},
                           {static_cast<py::ssize_t>(sizeof(Token))}, /*readonly=*/true);
  }
  const std::vector<Token>& tokens() const { return tokens_; }

 private:
  std::vector<Token> tokens_;
};

class PyEncoding {
 public:
  // REQUIRES: the GIL is held (the int table is built here, once per loaded encoding).
  explicit PyEncoding(std::shared_ptr<const Encoding> enc)
      : enc_(std::move(enc)), ints_(std::make_shared<IntTable>(enc_->n_vocab())) {
    ints_->Build();
  }
  py::list ToList(const std::vector<Token>& tokens) const { return ints_->ToList(tokens); }

  std::string name() const { return enc_->name(); }
  std::string pat_str() const { return std::string(enc_->regex()); }
  // {token bytes: rank} of every mergeable token (tiktoken's _mergeable_ranks).
  py::dict mergeable_ranks() const {
    py::dict d;
    for (Token t = 0; t <= enc_->max_token_value(); ++t) {
      if (enc_->IsSpecialToken(t)) continue;
      absl::StatusOr<std::string_view> bytes = enc_->DecodeSingleTokenBytes(t);
      if (!bytes.ok()) continue;  // a gap in the ranks
      d[py::bytes(bytes->data(), bytes->size())] = py::reinterpret_steal<py::object>(
          PyLong_FromUnsignedLong(t));
    }
    return d;
  }
  uint32_t n_vocab() const { return enc_->n_vocab(); }
  uint32_t max_token_value() const { return enc_->max_token_value(); }
  size_t memory_usage() const { return enc_->MemoryUsage(); }
  py::dict special_tokens() const {
    py::dict d;
    for (const auto& [text, id] : enc_->special_tokens()) d[py::str(text)] = id;
    return d;
  }

  py::list EncodeOrdinary(const py::str& text) const {
    const std::string_view v = Utf8View(text);
    std::vector<Token> out;
    {
      py::gil_scoped_release release;
      out = enc_->EncodeOrdinary(v);
    }
    return ToList(out);
  }

  // The ids in a TokenArray (zero-copy numpy / memoryview form).
  TokenArray EncodeOrdinaryToArray(const py::str& text) const {
    const std::string_view v = Utf8View(text);
    std::vector<Token> out;
    {
      py::gil_scoped_release release;
      out = enc_->EncodeOrdinary(v);
    }
    return TokenArray(std::move(out));
  }

  // tiktoken's _encode_bytes (Encoding::EncodeBytes).
  py::list EncodeBytes(const py::bytes& bytes) const {
    char* data = nullptr;
    Py_ssize_t size = 0;
    if (PyBytes_AsStringAndSize(bytes.ptr(), &data, &size) != 0) throw py::error_already_set();
    std::vector<Token> out;
    {
      py::gil_scoped_release release;  // `bytes` is immutable and referenced by the caller
      out = enc_->EncodeBytes(std::string_view(data, static_cast<size_t>(size)));
    }
    return ToList(out);
  }

  size_t CountOrdinary(const py::str& text) const {
    const std::string_view v = Utf8View(text);
    py::gil_scoped_release release;
    return enc_->CountOrdinary(v);
  }

  py::list Encode(const py::str& text, bool allowed_all, const std::vector<std::string>& allowed,
                  bool disallowed_all, const std::vector<std::string>& disallowed) const {
    return ToList(EncodeIds(text, allowed_all, allowed, disallowed_all, disallowed));
  }

  // The ids in a TokenArray, for numpy.frombuffer without a copy (tiktoken's encode_to_numpy).
  TokenArray EncodeToBuffer(const py::str& text, bool allowed_all,
                            const std::vector<std::string>& allowed, bool disallowed_all,
                            const std::vector<std::string>& disallowed) const {
    return TokenArray(EncodeIds(text, allowed_all, allowed, disallowed_all, disallowed));
  }

  size_t Count(const py::str& text, bool allowed_all, const std::vector<std::string>& allowed,
               bool disallowed_all, const std::vector<std::string>& disallowed) const {
    return WithSpecials<size_t>(
        text, allowed_all, allowed, disallowed_all, disallowed,
        [&](std::string_view v, const SpecialTokenSet& a, const SpecialTokenSet& d) {
          return enc_->Count(v, a, d);
        });
  }

  py::list EncodeBatch(const py::iterable& texts, int num_threads, bool allowed_all,
                       const std::vector<std::string>& allowed, bool disallowed_all,
                       const std::vector<std::string>& disallowed) const {
    TextBatch batch(texts);
    const SpecialTokenSet a = ToSet(allowed_all, allowed);
    const SpecialTokenSet d = ToSet(disallowed_all, disallowed);
    absl::StatusOr<std::vector<std::vector<Token>>> out;
    {
      py::gil_scoped_release release;
      out = enc_->EncodeBatch(batch.views, a, d, num_threads);
    }
    if (!out.ok()) ThrowStatus(out.status());
    py::list result(out->size());
    for (size_t i = 0; i < out->size(); ++i) result[i] = ToList((*out)[i]);
    return result;
  }

  py::list EncodeOrdinaryBatch(const py::iterable& texts, int num_threads) const {
    TextBatch batch(texts);
    std::vector<std::vector<Token>> out;
    {
      py::gil_scoped_release release;
      out = enc_->EncodeOrdinaryBatch(batch.views, num_threads);
    }
    py::list result(out.size());
    for (size_t i = 0; i < out.size(); ++i) result[i] = ToList(out[i]);
    return result;
  }

  std::vector<size_t> CountOrdinaryBatch(const py::iterable& texts, int num_threads) const {
    TextBatch batch(texts);
    py::gil_scoped_release release;
    return enc_->CountOrdinaryBatch(batch.views, num_threads);
  }

  py::bytes DecodeBytes(const py::iterable& tokens) const {
    const std::vector<Token> ids = ToTokens(tokens);
    absl::StatusOr<std::string> out;
    {
      py::gil_scoped_release release;
      out = enc_->DecodeBytes(ids);
    }
    if (!out.ok()) ThrowStatus(out.status());
    return py::bytes(*out);
  }

  py::bytes DecodeSingleTokenBytes(uint32_t token) const {
    absl::StatusOr<std::string_view> out = enc_->DecodeSingleTokenBytes(token);
    if (!out.ok()) ThrowStatus(out.status());
    return py::bytes(out->data(), out->size());
  }

  Token EncodeSingleToken(const py::bytes& bytes) const {
    char* data = nullptr;
    Py_ssize_t size = 0;
    if (PyBytes_AsStringAndSize(bytes.ptr(), &data, &size) != 0) throw py::error_already_set();
    return ValueOrThrow(enc_->EncodeSingleToken(std::string_view(data, static_cast<size_t>(size))));
  }

  bool IsSpecialToken(uint32_t token) const { return enc_->IsSpecialToken(token); }

 private:
  // call(text, allowed, disallowed) (Encode or Count) with the GIL released; an error
  // becomes a Python exception.
  template <class T, class Call>
  T WithSpecials(const py::str& text, bool allowed_all, const std::vector<std::string>& allowed,
                    bool disallowed_all, const std::vector<std::string>& disallowed,
                    const Call& call) const {
    const std::string_view v = Utf8View(text);
    const SpecialTokenSet a = ToSet(allowed_all, allowed);
    const SpecialTokenSet d = ToSet(disallowed_all, disallowed);
    absl::StatusOr<T> out;
    {
      py::gil_scoped_release release;
      out = call(v, a, d);
    }
    if (!out.ok()) ThrowStatus(out.status());
    return *std::move(out);
  }

  std::vector<Token> EncodeIds(const py::str& text, bool allowed_all,
                               const std::vector<std::string>& allowed, bool disallowed_all,
                               const std::vector<std::string>& disallowed) const {
    return WithSpecials<std::vector<Token>>(
        text, allowed_all, allowed, disallowed_all, disallowed,
        [&](std::string_view v, const SpecialTokenSet& a, const SpecialTokenSet& d) {
          return enc_->Encode(v, a, d);
        });
  }

  std::shared_ptr<const Encoding> enc_;
  std::shared_ptr<IntTable> ints_;  // shared by copies; touched only with the GIL held
};

PyEncoding GetEncodingShim(const std::string& name, const std::string& rank_file,
                           const std::string& tokenizer_dir, const std::string& cache_dir,
                           bool verify_sha256) {
  EncodingOptions options;
  options.rank_file = rank_file;
  options.tokenizer_dir = tokenizer_dir;
  options.tiktoken_cache_dir = cache_dir;
  options.verify_sha256 = verify_sha256;
  absl::StatusOr<std::shared_ptr<const Encoding>> enc;
  {
    py::gil_scoped_release release;  // the first call reads and parses a file
    enc = GetEncoding(name, options);
  }
  if (!enc.ok()) ThrowStatus(enc.status());
  return PyEncoding(*std::move(enc));
}

// tiktoken's Encoding(name, pat_str=, mergeable_ranks=, special_tokens=, explicit_n_vocab=).
// REQUIRES: the GIL is held. Errors: TypeError for keys or values of the wrong type;
// modeenvoy errors (INVALID_ARGUMENT, DATA_LOSS, UNIMPLEMENTED) from CreateFromRanks.
PyEncoding CreateEncodingShim(const std::string& name, const std::string& pat_str,
                              const py::dict& mergeable_ranks, const py::dict& special_tokens,
                              uint32_t explicit_n_vocab) {
  EncodingSpec spec;
  spec.name = name;
  spec.pattern = SplitPattern::kRegex;
  spec.regex = pat_str;
  spec.explicit_n_vocab = explicit_n_vocab;
  auto as_token = [](PyObject* v, const char* what) -> Token {
    if (!PyLong_Check(v)) {
      throw py::type_error(std::string(what) + ": values must be int, got " +
                           Py_TYPE(v)->tp_name);
    }
    const unsigned long t = PyLong_AsUnsignedLong(v);
    if (t == static_cast<unsigned long>(-1) && PyErr_Occurred()) throw py::error_already_set();
    if (t > 0xffffffffUL) throw py::value_error(std::string(what) + ": id does not fit in 32 bits");
    return static_cast<Token>(t);
  };
  for (auto [k, v] : special_tokens) {
    if (!PyUnicode_Check(k.ptr())) {
      throw py::type_error(std::string("special_tokens: keys must be str, got ") +
                           Py_TYPE(k.ptr())->tp_name);
    }
    spec.special_tokens.emplace_back(std::string(Utf8View(k)), as_token(v.ptr(), "special_tokens"));
  }
  std::vector<std::pair<std::string, Token>> ranks;
  ranks.reserve(static_cast<size_t>(PyDict_Size(mergeable_ranks.ptr())));
  PyObject* key = nullptr;
  PyObject* value = nullptr;
  Py_ssize_t pos = 0;
  while (PyDict_Next(mergeable_ranks.ptr(), &pos, &key, &value)) {
    if (!PyBytes_Check(key)) {
      throw py::type_error(std::string("mergeable_ranks: keys must be bytes, got ") +
                           Py_TYPE(key)->tp_name);
    }
    ranks.emplace_back(std::string(PyBytes_AS_STRING(key), static_cast<size_t>(PyBytes_GET_SIZE(key))),
                       as_token(value, "mergeable_ranks"));
  }
  absl::StatusOr<std::unique_ptr<Encoding>> enc;
  {
    py::gil_scoped_release release;
    enc = Encoding::CreateFromRanks(std::move(spec), std::move(ranks));
  }
  if (!enc.ok()) ThrowStatus(enc.status());
  return PyEncoding(std::shared_ptr<const Encoding>(*std::move(enc)));
}

}  // namespace
}  // namespace modeenvoy::python

void RegisterTokenizer(pybind11::module_& m) {
  using modeenvoy::python::PyEncoding;
  using modeenvoy::python::TokenArray;
  py::class_<TokenArray>(m, "TokenArray", py::buffer_protocol(),
                         "Token ids as a read-only uint32 buffer (numpy.frombuffer, memoryview).")
      .def_buffer(&TokenArray::Buffer)
      .def("__len__", &TokenArray::size)
      .def("tolist", [](const TokenArray& a) {
        py::list l(a.size());
        for (size_t i = 0; i < a.size(); ++i) l[i] = a.tokens()[i];
        return l;
      });
  py::class_<PyEncoding>(m, "_TokEncoding", "Internal: a loaded encoding (see modeenvoy.Encoding).")
      .def_property_readonly("name", &PyEncoding::name)
      .def_property_readonly("n_vocab", &PyEncoding::n_vocab)
      .def_property_readonly("pat_str", &PyEncoding::pat_str)
      .def("mergeable_ranks", &PyEncoding::mergeable_ranks)
      .def("encode_ordinary_to_array", &PyEncoding::EncodeOrdinaryToArray, py::arg("text"))
      .def("encode_bytes", &PyEncoding::EncodeBytes, py::arg("bytes"))
      .def_property_readonly("max_token_value", &PyEncoding::max_token_value)
      .def("memory_usage", &PyEncoding::memory_usage)
      .def("special_tokens", &PyEncoding::special_tokens)
      .def("encode_ordinary", &PyEncoding::EncodeOrdinary, py::arg("text"))
      .def("count_ordinary", &PyEncoding::CountOrdinary, py::arg("text"))
      .def("encode", &PyEncoding::Encode, py::arg("text"), py::arg("allowed_all"),
           py::arg("allowed"), py::arg("disallowed_all"), py::arg("disallowed"))
      .def("encode_to_buffer", &PyEncoding::EncodeToBuffer, py::arg("text"),
           py::arg("allowed_all"), py::arg("allowed"), py::arg("disallowed_all"),
           py::arg("disallowed"))
      .def("count", &PyEncoding::Count, py::arg("text"), py::arg("allowed_all"),
           py::arg("allowed"), py::arg("disallowed_all"), py::arg("disallowed"))
      .def("encode_batch", &PyEncoding::EncodeBatch, py::arg("texts"), py::arg("num_threads"),
           py::arg("allowed_all"), py::arg("allowed"), py::arg("disallowed_all"),
           py::arg("disallowed"))
      .def("encode_ordinary_batch", &PyEncoding::EncodeOrdinaryBatch, py::arg("texts"),
           py::arg("num_threads"))
      .def("count_ordinary_batch", &PyEncoding::CountOrdinaryBatch, py::arg("texts"),
           py::arg("num_threads"))
      .def("decode_bytes", &PyEncoding::DecodeBytes, py::arg("tokens"))
      .def("decode_single_token_bytes", &PyEncoding::DecodeSingleTokenBytes, py::arg("token"))
      .def("encode_single_token", &PyEncoding::EncodeSingleToken, py::arg("bytes"))
      .def("is_special_token", &PyEncoding::IsSpecialToken, py::arg("token"));
  m.def("_tok_get_encoding", &modeenvoy::python::GetEncodingShim, py::arg("name"),
        py::arg("rank_file") = "", py::arg("tokenizer_dir") = "", py::arg("cache_dir") = "",
        py::arg("verify_sha256") = true);
  m.def("_tok_create_encoding", &modeenvoy::python::CreateEncodingShim, py::arg("name"),
        py::arg("pat_str"), py::arg("mergeable_ranks"), py::arg("special_tokens"),
        py::arg("explicit_n_vocab") = 0);
  m.def("_tok_encoding_name_for_model", [](const std::string& model) {
    return modeenvoy::python::ValueOrThrow(modeenvoy::EncodingNameForModel(model));
  });
  m.def("_tok_list_encoding_names", &modeenvoy::ListEncodingNames);
  m.def("_tok_set_piece_cache_bytes", [](size_t bytes) { modeenvoy::SetPieceCacheBytes(bytes); },
        py::arg("bytes"));
  m.def("_tok_piece_cache_bytes", &modeenvoy::PieceCacheBytes);
  m.def("_tok_set_pretokenizer_mode", [](std::string_view mode) -> std::string {
    return modeenvoy::python::ValueOrThrow(modeenvoy::SetPretokenizerMode(mode));
  }, py::arg("mode"));
  m.def("_tok_pretokenizer_mode", &modeenvoy::PretokenizerMode);
  m.def("_tok_piece_cache_stats", [](bool reset) {
    size_t memory = 0;
    const modeenvoy::PieceCacheStats s = modeenvoy::ThisThreadPieceCacheStats(&memory);
    if (reset) modeenvoy::ResetThisThreadPieceCacheStats();
    py::dict d;
    d["hits"] = s.hits;
    d["misses"] = s.misses;
    d["inserts"] = s.inserts;
    d["evictions"] = s.evictions;
    d["memory_bytes"] = memory;
    return d;
  }, py::arg("reset"));
}
