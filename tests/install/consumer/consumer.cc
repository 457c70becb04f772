// Built against an installed modeenvoy by scripts/install_check.sh.
#include <cstdio>
#include <string>

#include "modeenvoy/clock.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/error.h"

int main() {
  auto req = modeenvoy::ParseChatRequest(
      R"({"model":"demo","messages":[{"role":"user","content":"hi"}],"x_custom":{"a":1}})");
  if (!req.ok()) {
    std::fprintf(stderr, "parse failed: %s\n", std::string(req.status().message()).c_str());
    return 1;
  }
  std::string out = modeenvoy::SerializeChatRequest(*req);
  if (out.find("x_custom") == std::string::npos) {
    std::fprintf(stderr, "unknown field lost: %s\n", out.c_str());
    return 1;
  }
  auto bad = modeenvoy::ParseChatRequest(R"({"model":"demo","messages":[]})");
  if (bad.ok() || modeenvoy::HttpStatusForStatus(bad.status()) != 400) {
    std::fprintf(stderr, "empty messages accepted\n");
    return 1;
  }
  modeenvoy::FakeClock clock;
  clock.Advance(absl::Seconds(1));
  std::printf("consumer ok: %s\n", out.c_str());
  return 0;
}
