// tests/router/router_test_util.h: building routers from JSON in tests.
#ifndef MODEENVOY_TESTS_ROUTER_ROUTER_TEST_UTIL_H_
#define MODEENVOY_TESTS_ROUTER_ROUTER_TEST_UTIL_H_

#include <memory>
#include <string>
#include <string_view>

#include "gtest/gtest.h"
#include "modeenvoy/router/router.h"

namespace modeenvoy::router_test {

inline std::unique_ptr<Router> MakeRouter(std::string_view json, const Clock* clock = nullptr) {
  auto config = ParseRouterConfig(json);
  EXPECT_TRUE(config.ok()) << config.status();
  auto router = NewRouter({.clock = clock, .seed = 42});
  if (config.ok()) {
    EXPECT_TRUE(router->Update(*config).ok());
  }
  return router;
}

// The deployment id of the first attempt for `request`; the plan is dropped at once.
inline std::string FirstPick(const Router& router, const RouteRequest& request) {
  auto plan = router.Plan(request);
  if (!plan.ok()) return "error: " + std::string(plan.status().message());
  auto attempt = (*plan)->Next();
  return attempt ? attempt->deployment->id : "none";
}

inline const DeploymentHealth* FindHealth(const std::vector<DeploymentHealth>& all,
                                          std::string_view id) {
  for (const auto& h : all) {
    if (h.id == id) return &h;
  }
  return nullptr;
}

}  // namespace modeenvoy::router_test

#endif  // MODEENVOY_TESTS_ROUTER_ROUTER_TEST_UTIL_H_
