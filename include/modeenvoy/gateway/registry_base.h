// include/modeenvoy/gateway/registry_base.h: the shape every engine registry shares, and
// what a builder receives besides its configuration.
//
// Registries map a name used in the configuration (a filter type, a provider type, a
// routing policy, a config section, an endpoint kind) to the code that builds it. A
// component is files in its own folder plus one registration call into modeenvoy::Registry
// (registry.h); the engine never names a component.
#ifndef MODEENVOY_GATEWAY_REGISTRY_BASE_H_
#define MODEENVOY_GATEWAY_REGISTRY_BASE_H_

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "modeenvoy/export.h"

namespace modeenvoy {

class Services;  // services.h

// Returns the value of the environment variable `name`, or nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

// What a builder gets besides its configuration text.
struct BuildContext {
  std::string_view type;  // the registered name being built
  std::string_view name;  // the entry's own name (filter name, provider or model key)
  std::string_view path;  // field path of the entry in the document, for messages
  // Resolves `*_env` settings; never null inside a builder call.
  const EnvLookup* env_lookup = nullptr;
  // Clock, randomness and named state surviving reloads; never null inside a builder call.
  Services* services = nullptr;
};

// NamedRegistry maps names to builders of type `Builder` (a std::function).
// Thread safety: thread-safe. Lookups return a copy, so builders run without the lock.
template <typename Builder>
class NamedRegistry {
 public:
  // `what` names the kind of entry in messages ("filter type").
  explicit NamedRegistry(std::string what) : what_(std::move(what)) {}
  NamedRegistry(const NamedRegistry&) = delete;
  NamedRegistry& operator=(const NamedRegistry&) = delete;

  // Errors: kInvalidArgument if `name` is empty or `builder` is null; kAlreadyExists if
  // `name` is registered.
  absl::Status Register(std::string_view name, Builder builder) ABSL_LOCKS_EXCLUDED(mu_) {
    if (name.empty()) return absl::InvalidArgumentError(what_ + " must not be empty");
    if (builder == nullptr) {
      return absl::InvalidArgumentError(what_ + " \"" + std::string(name) +
                                        "\": builder must not be null");
    }
    absl::MutexLock lock(&mu_);
    if (!builders_.try_emplace(std::string(name), std::move(builder)).second) {
      return absl::AlreadyExistsError(what_ + " \"" + std::string(name) +
                                      "\" is already registered");
    }
    return absl::OkStatus();
  }

  bool Contains(std::string_view name) const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return builders_.contains(std::string(name));
  }

  // The builder of `name`, or nullopt.
  std::optional<Builder> Find(std::string_view name) const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto it = builders_.find(std::string(name));
    if (it == builders_.end()) return std::nullopt;
    return it->second;
  }

  // Registered names, sorted.
  std::vector<std::string> names() const ABSL_LOCKS_EXCLUDED(mu_) {
    std::vector<std::string> out;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [name, builder] : builders_) out.push_back(name);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  const std::string& what() const { return what_; }

 private:
  const std::string what_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Builder> builders_ ABSL_GUARDED_BY(mu_);
};

}  // namespace modeenvoy

#endif  // MODEENVOY_GATEWAY_REGISTRY_BASE_H_
