// tests/gateway/test_http_server.cc
#include "tests/gateway/test_http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "lib/core/mutex.h"

namespace modeenvoy::gateway_testing {
namespace {

bool WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string StatusText(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

std::string Head(int status, const HttpHeaders& headers) {
  std::string out = absl::StrFormat("HTTP/1.1 %d %s\r\n", status, StatusText(status));
  for (const auto& [name, value] : headers) absl::StrAppend(&out, name, ": ", value, "\r\n");
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// TestConnection

bool TestConnection::WriteRaw(std::string_view bytes) { return WriteAll(fd_, bytes); }

bool TestConnection::SendResponse(int status, const HttpHeaders& headers,
                                  std::string_view body) {
  std::string out = Head(status, headers);
  absl::StrAppend(&out, "Content-Length: ", body.size(), "\r\n\r\n");
  out.append(body);
  return WriteAll(fd_, out);
}

bool TestConnection::StartChunked(int status, const HttpHeaders& headers) {
  std::string out = Head(status, headers);
  out += "Transfer-Encoding: chunked\r\n\r\n";
  return WriteAll(fd_, out);
}

bool TestConnection::SendChunk(std::string_view data) {
  if (data.empty()) return true;  // an empty chunk would end the body
  return WriteAll(fd_, absl::StrFormat("%x\r\n%s\r\n", data.size(), data));
}

bool TestConnection::EndChunked() { return WriteAll(fd_, "0\r\n\r\n"); }

bool TestConnection::WaitGate(std::string_view gate, absl::Duration timeout) {
  std::string name(gate);
  core_internal::MutexLock lock(&server_->mu_);
  auto cond = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(server_->mu_) {
    return server_->stopping_ || server_->gates_.contains(name);
  };
  core_internal::AwaitWithTimeout(&server_->mu_, cond, timeout);
  return server_->gates_.contains(name);
}

void TestConnection::Signal(std::string_view event) {
  core_internal::MutexLock lock(&server_->mu_);
  server_->events_.insert(std::string(event));
}

bool TestConnection::WaitForPeerClose(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  char buf[4096];
  while (absl::Now() < deadline) {
    if (!server_->WaitReadable(fd_, deadline - absl::Now())) return false;
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n == 0) return true;
    if (n < 0 && errno != EINTR && errno != EAGAIN) return true;  // reset counts as closed
  }
  return false;
}

void TestConnection::Close() { close_ = true; }

void TestConnection::Reset() { reset_ = true; }

// ---------------------------------------------------------------------------------------
// TestHttpServer

TestHttpServer::TestHttpServer(TestHandler handler) : handler_(std::move(handler)) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  listen(listen_fd_, 64);
  socklen_t len = sizeof addr;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  if (pipe(stop_pipe_) != 0) stop_pipe_[0] = stop_pipe_[1] = -1;
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

TestHttpServer::~TestHttpServer() {
  {
    core_internal::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (stop_pipe_[1] >= 0) {
    char b = 1;
    [[maybe_unused]] ssize_t r = write(stop_pipe_[1], &b, 1);
  }
  acceptor_.join();
  std::vector<std::thread> threads;
  {
    core_internal::MutexLock lock(&mu_);
    threads.swap(connection_threads_);
  }
  for (auto& t : threads) t.join();
  close(listen_fd_);
  for (int fd : stop_pipe_) {
    if (fd >= 0) close(fd);
  }
}

std::string TestHttpServer::Url(std::string_view path) const {
  return absl::StrFormat("http://127.0.0.1:%d%s", port_, path);
}

void TestHttpServer::OpenGate(std::string_view gate) {
  core_internal::MutexLock lock(&mu_);
  gates_.insert(std::string(gate));
}

bool TestHttpServer::WaitForEvent(std::string_view event, absl::Duration timeout) {
  std::string name(event);
  core_internal::MutexLock lock(&mu_);
  auto cond = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return events_.contains(name); };
  return core_internal::AwaitWithTimeout(&mu_, cond, timeout);
}

int TestHttpServer::connections_accepted() const {
  core_internal::MutexLock lock(&mu_);
  return accepted_;
}

std::vector<ReceivedRequest> TestHttpServer::requests() const {
  core_internal::MutexLock lock(&mu_);
  return requests_;
}

bool TestHttpServer::stopping() const {
  core_internal::MutexLock lock(&mu_);
  return stopping_;
}

bool TestHttpServer::WaitReadable(int fd, absl::Duration timeout) {
  pollfd fds[2] = {{fd, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
  int ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  if (ms < 0) ms = 0;
  int n = poll(fds, 2, ms);
  if (n <= 0) return false;
  if (fds[1].revents != 0) return false;  // stopping
  return true;
}

void TestHttpServer::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    int n = poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || fds[1].revents != 0) return;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    core_internal::MutexLock lock(&mu_);
    int index = ++accepted_;
    connection_threads_.emplace_back([this, fd, index] { ServeConnection(fd, index); });
  }
}

bool TestHttpServer::ReadRequest(int fd, std::string* buffer, ReceivedRequest* out) {
  char chunk[8192];
  size_t header_end;
  while ((header_end = buffer->find("\r\n\r\n")) == std::string::npos) {
    if (!WaitReadable(fd, kTestWait)) return false;
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer->append(chunk, static_cast<size_t>(n));
  }
  std::string head = buffer->substr(0, header_end);
  buffer->erase(0, header_end + 4);
  std::vector<std::string> lines = absl::StrSplit(head, "\r\n");
  std::vector<std::string> first = absl::StrSplit(lines[0], ' ');
  if (first.size() < 2) return false;
  out->method = first[0];
  out->path = first[1];
  size_t content_length = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    std::string name(absl::StripAsciiWhitespace(lines[i].substr(0, colon)));
    std::string value(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
    if (absl::EqualsIgnoreCase(name, "content-length")) {
      (void)absl::SimpleAtoi(value, &content_length);
    }
    out->headers.emplace_back(std::move(name), std::move(value));
  }
  while (buffer->size() < content_length) {
    if (!WaitReadable(fd, kTestWait)) return false;
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer->append(chunk, static_cast<size_t>(n));
  }
  out->body = buffer->substr(0, content_length);
  buffer->erase(0, content_length);
  return true;
}

void TestHttpServer::ServeConnection(int fd, int index) {
  std::string buffer;
  while (!stopping()) {
    ReceivedRequest request;
    if (!ReadRequest(fd, &buffer, &request)) break;
    request.connection = index;
    {
      core_internal::MutexLock lock(&mu_);
      requests_.push_back(request);
    }
    TestConnection conn(this, fd, std::move(request));
    handler_(conn);
    if (conn.reset_) {
      linger lg{1, 0};  // close() then sends RST
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      break;
    }
    if (conn.close_) break;
  }
  close(fd);
}

uint16_t UnusedPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace modeenvoy::gateway_testing
