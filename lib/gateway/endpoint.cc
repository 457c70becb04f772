// lib/gateway/endpoint.cc: endpoint patterns, their registry and the frozen match table.
#include "modeenvoy/gateway/endpoint.h"

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "lib/core/mutex.h"
#include "modeenvoy/gateway/filter.h"

namespace modeenvoy {
namespace {

using Segments = absl::InlinedVector<std::string_view, 8>;

// "/a/b/c" -> {"a", "b", "c"}; "/" -> {""}. REQUIRES: path starts with '/'.
Segments Split(std::string_view path) {
  Segments out;
  path.remove_prefix(1);
  while (true) {
    size_t slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

bool IsParam(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

bool ValidParamName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_')) {
      return false;
    }
  }
  return true;
}

absl::Status ValidatePattern(std::string_view pattern) {
  if (pattern.empty() || pattern.front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrFormat("endpoint pattern \"%s\" must be an absolute path", pattern));
  }
  if (pattern.find_first_of("?#") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrFormat("endpoint pattern \"%s\" must not contain a query", pattern));
  }
  for (std::string_view seg : Split(pattern)) {
    bool has_brace = seg.find_first_of("{}") != std::string_view::npos;
    if (!has_brace) continue;
    if (!IsParam(seg) || !ValidParamName(seg.substr(1, seg.size() - 2))) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "endpoint pattern \"%s\": segment \"%s\" must be a literal or {name}", pattern, seg));
    }
  }
  return absl::OkStatus();
}

// The pattern with parameter names erased, to find two patterns that always match alike.
std::string Shape(std::string_view pattern) {
  std::string out;
  for (std::string_view seg : Split(pattern)) {
    out += '/';
    out += IsParam(seg) ? std::string_view("{}") : seg;
  }
  return out;
}

}  // namespace

std::string_view PathParam(const PathParams& params, std::string_view name) {
  for (const auto& [key, value] : params) {
    if (key == name) return value;
  }
  return {};
}

EndpointTable::EndpointTable(std::vector<EndpointSpec> specs) : specs_(std::move(specs)) {
  segments_.reserve(specs_.size());
  for (const EndpointSpec& spec : specs_) {
    if (!spec.header.empty()) has_conditional_ = true;
    std::vector<std::string> segs;
    for (std::string_view s : Split(spec.pattern)) segs.emplace_back(s);
    segments_.push_back(std::move(segs));
  }
}

EndpointMatch EndpointTable::Match(std::string_view method, std::string_view path,
                                   const HttpHeaders* headers) const {
  EndpointMatch result;
  if (size_t q = path.find_first_of("?#"); q != std::string_view::npos) path = path.substr(0, q);
  if (path.empty() || path.front() != '/') return result;
  // An endpoint with a header condition takes part only when the request carries it.
  auto eligible = [&](const EndpointSpec& spec) {
    return spec.header.empty() ||
           (headers != nullptr && FindHeader(*headers, spec.header).has_value());
  };
  // Every request comes here. The usual one names a literal pattern exactly
  // ("/v1/chat/completions"); that pattern scores highest among those of its segment count
  // (ties only past segment 63, where scores stop counting), so the first such spec is the
  // answer the scoring below would give, without splitting anything; one with a header
  // condition the request meets wins over one without.
  const EndpointSpec* plain = nullptr;
  for (const EndpointSpec& spec : specs_) {
    if (spec.pattern == path && spec.method == method &&
        spec.pattern.find('{') == std::string::npos &&
        std::count(path.begin(), path.end(), '/') <= 63) {
      if (spec.header.empty()) {
        if (!has_conditional_) {
          result.endpoint = &spec;
          return result;
        }
        if (plain == nullptr) plain = &spec;
      } else if (eligible(spec)) {
        result.endpoint = &spec;
        return result;
      }
    }
  }
  if (plain != nullptr) {
    result.endpoint = plain;
    return result;
  }
  const Segments request = Split(path);
  size_t best = specs_.size();
  uint64_t best_score = 0;
  for (size_t i = 0; i < specs_.size(); ++i) {
    const std::vector<std::string>& segs = segments_[i];
    if (segs.size() != request.size() || !eligible(specs_[i])) continue;
    uint64_t score = 0;  // literal segments, earlier ones weigh more
    bool match = true;
    for (size_t k = 0; k < segs.size() && match; ++k) {
      if (IsParam(segs[k])) {
        match = !request[k].empty();
      } else {
        match = segs[k] == request[k];
        if (match && k < 63) score |= uint64_t{1} << (63 - k);
      }
    }
    if (!match) continue;
    if (specs_[i].method != method) {
      result.allowed_methods.push_back(specs_[i].method);
      continue;
    }
    if (best == specs_.size() || score > best_score ||
        (score == best_score && specs_[best].header.empty() && !specs_[i].header.empty())) {
      best = i;
      best_score = score;
    }
  }
  if (best == specs_.size()) {
    std::sort(result.allowed_methods.begin(), result.allowed_methods.end());
    result.allowed_methods.erase(
        std::unique(result.allowed_methods.begin(), result.allowed_methods.end()),
        result.allowed_methods.end());
    return result;
  }
  result.allowed_methods.clear();
  result.endpoint = &specs_[best];
  const std::vector<std::string>& segs = segments_[best];
  for (size_t k = 0; k < segs.size(); ++k) {
    if (IsParam(segs[k])) {
      result.params.emplace_back(segs[k].substr(1, segs[k].size() - 2), std::string(request[k]));
    }
  }
  return result;
}

absl::Status EndpointRegistry::Register(EndpointSpec spec) {
  if (spec.kind.empty()) return absl::InvalidArgumentError("endpoint kind must not be empty");
  if (spec.method.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("endpoint \"%s\": method must not be empty", spec.kind));
  }
  if (absl::Status s = ValidatePattern(spec.pattern); !s.ok()) return s;
  if ((spec.model_call == nullptr) == (spec.local == nullptr)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "endpoint \"%s\": exactly one of model_call and local is required", spec.kind));
  }
  if (spec.filter != nullptr && spec.model_call == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "endpoint \"%s\": filter is for model-call endpoints only", spec.kind));
  }
  if (!spec.header.empty() && !IsValidHeaderName(spec.header)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "endpoint \"%s\": header \"%s\" is not a valid header name", spec.kind, spec.header));
  }
  core_internal::MutexLock lock(&mu_);
  const std::string shape = Shape(spec.pattern);
  for (const EndpointSpec& other : specs_) {
    if (other.method == spec.method && Shape(other.pattern) == shape &&
        absl::EqualsIgnoreCase(other.header, spec.header)) {
      return absl::AlreadyExistsError(absl::StrFormat(
          "endpoint %s %s%s is already registered", spec.method, spec.pattern,
          spec.header.empty() ? std::string() : " (with header " + spec.header + ")"));
    }
  }
  specs_.push_back(std::move(spec));
  return absl::OkStatus();
}

std::shared_ptr<const EndpointTable> EndpointRegistry::Table() const {
  std::vector<EndpointSpec> copy;
  {
    core_internal::MutexLock lock(&mu_);
    copy = specs_;
  }
  return std::make_shared<const EndpointTable>(std::move(copy));
}

}  // namespace modeenvoy
