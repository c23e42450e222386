// Errors as values: the result type every Portico primitive returns.
//
// An embedded library must never abort its host, and exceptions are not used
// for control flow, so fallible operations return Result<T>: either a value or
// an Error that says what kind of thing went wrong and why, in words fit for a
// log line or a configuration error report.
//
// Threading: plain values; no shared state.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace portico {

// What kind of failure an Error reports. Callers branch on the kind; the
// message is for people.
enum class ErrorKind {
  invalid_argument,  // a parameter is out of its documented domain
  conflict,          // the new item clashes with one already present
  malformed,         // input text does not follow its grammar
  capacity,          // a fixed bound (size, count) would be exceeded
  not_found,         // the named item does not exist
};

// Returns a stable lower-case name for `kind`, e.g. "invalid_argument".
constexpr const char* error_kind_name(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::invalid_argument:
      return "invalid_argument";
    case ErrorKind::conflict:
      return "conflict";
    case ErrorKind::malformed:
      return "malformed";
    case ErrorKind::capacity:
      return "capacity";
    case ErrorKind::not_found:
      return "not_found";
  }
  return "unknown";
}

struct Error {
  ErrorKind kind;
  std::string message;
};

inline Error make_error(ErrorKind kind, std::string message) {
  return Error{kind, std::move(message)};
}

// A value of type T or an Error. Accessing the wrong alternative is a
// programming error (checked by std::get in debug and sanitizer builds).
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

// Success or an Error, for operations without a value.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit by design

  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const Error& error() const& { return error_; }
  Error&& error() && { return std::move(error_); }

 private:
  Error error_{ErrorKind::invalid_argument, {}};
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace portico
