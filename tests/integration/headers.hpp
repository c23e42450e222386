// Reading header fields and bodies out of raw HTTP messages in the policy
// tests.
#pragma once

#include <cctype>
#include <string>
#include <vector>

namespace portico::test {

inline std::string lower(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The values of every `name` field of a message's head, in order.
inline std::vector<std::string> header_values(const std::string& message, const std::string& name) {
  std::vector<std::string> out;
  const std::string head = message.substr(0, message.find("\r\n\r\n") + 2);
  const std::string needle = "\r\n" + lower(name) + ":";
  const std::string folded = lower(head);
  for (std::size_t at = folded.find(needle); at != std::string::npos;
       at = folded.find(needle, at + 1)) {
    std::size_t start = at + needle.size();
    while (start < head.size() && head[start] == ' ')
      ++start;
    out.push_back(head.substr(start, head.find("\r\n", start) - start));
  }
  return out;
}

// The first `name` field's value, or "".
inline std::string header_value(const std::string& message, const std::string& name) {
  const auto all = header_values(message, name);
  return all.empty() ? std::string() : all.front();
}

inline bool has_header(const std::string& message, const std::string& name) {
  return !header_values(message, name).empty();
}

// What follows the head.
inline std::string body_of(const std::string& message) {
  const std::size_t end = message.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : message.substr(end + 4);
}

}  // namespace portico::test
