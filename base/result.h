// Error values for host-side ckpt code.
//
// Fallible functions return Result<T> (or Status == Result<void>). An Error
// carries an errno (0 if none) and a message; context is prepended as the
// error climbs ("pid 42 fd 7: " + "io_uring is not supported"). The error is
// logged once, where it is handled (the top of a subcommand).
//
//   Result<int> OpenIt(const std::string& p) {
//     int fd = open(p.c_str(), O_RDONLY);
//     if (fd < 0) return Error::Errno("open " + p);
//     return fd;
//   }
//   TRY_ASSIGN(int fd, OpenIt(path));     // returns the error on failure
//   TRY(DoThing(fd), "dumping fd " + ...); // adds context on failure
#pragma once

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace ckpt {

class Error {
 public:
  Error() = default;
  explicit Error(std::string msg, int err = 0) : msg_(std::move(msg)), errno_(err) {}

  // Captures errno at the call: "what: strerror(errno)".
  static Error Errno(const std::string& what) {
    int e = errno;
    return Error(what + ": " + std::strerror(e), e);
  }
  static Error Errno(const std::string& what, int e) {
    return Error(what + ": " + std::strerror(e), e);
  }

  const std::string& message() const { return msg_; }
  int err() const { return errno_; }

  // Prepends "ctx: " to the message.
  Error& Context(const std::string& ctx) {
    if (!ctx.empty()) msg_ = ctx + ": " + msg_;
    return *this;
  }

 private:
  std::string msg_;
  int errno_ = 0;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T v) : v_(std::move(v)) {}      // NOLINT(google-explicit-constructor)
  Result(Error e) : v_(std::move(e)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& value() const& { return std::get<0>(v_); }
  T& operator*() & { return value(); }
  T* operator->() { return &value(); }
  const Error& error() const { return std::get<1>(v_); }
  Error& error() { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error e) : e_(std::move(e)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return !e_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *e_; }
  Error& error() { return *e_; }

 private:
  std::optional<Error> e_;
};

using Status = Result<void>;

inline Status Ok() { return Status(); }

}  // namespace ckpt

#define CKPT_CONCAT_INNER(a, b) a##b
#define CKPT_CONCAT(a, b) CKPT_CONCAT_INNER(a, b)

// TRY(expr) or TRY(expr, context): return the error of a failed Status/Result.
#define TRY_1(expr)                               \
  do {                                            \
    auto _st = (expr);                            \
    if (!_st.ok()) return std::move(_st.error()); \
  } while (0)
#define TRY_2(expr, ctx)                                       \
  do {                                                         \
    auto _st = (expr);                                         \
    if (!_st.ok()) return std::move(_st.error().Context(ctx)); \
  } while (0)
#define TRY_PICK(_1, _2, NAME, ...) NAME
#define TRY(...) TRY_PICK(__VA_ARGS__, TRY_2, TRY_1)(__VA_ARGS__)

// TRY_ASSIGN(decl, expr) or TRY_ASSIGN(decl, expr, context): declare (or
// assign) `decl` from a Result, or return its error with context prepended.
#define TRY_ASSIGN_2(decl, expr) TRY_ASSIGN_IMPL(CKPT_CONCAT(_res_, __LINE__), decl, expr, "")
#define TRY_ASSIGN_3(decl, expr, ctx) TRY_ASSIGN_IMPL(CKPT_CONCAT(_res_, __LINE__), decl, expr, ctx)
#define TRY_ASSIGN_PICK(_1, _2, _3, NAME, ...) NAME
#define TRY_ASSIGN(...) TRY_ASSIGN_PICK(__VA_ARGS__, TRY_ASSIGN_3, TRY_ASSIGN_2)(__VA_ARGS__)
#define TRY_ASSIGN_IMPL(tmp, decl, expr, ctx)                \
  auto tmp = (expr);                                         \
  if (!tmp.ok()) return std::move(tmp.error().Context(ctx)); \
  decl = std::move(tmp).value()
