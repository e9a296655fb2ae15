#pragma once

// A small, strict JSON parser for the `natsvisor` tool (and its tests): the whole RFC 8259
// grammar into a plain tree, with the byte offset of the first problem. Replies come from the
// network, so nesting depth and trailing garbage are checked; nothing is assumed about them.

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace natsvisor::cli {

struct json {
  enum kind_t { null, boolean, number, string, array, object } kind = null;
  bool b = false;
  double n = 0;
  std::string s;
  std::vector<json> items;                           ///< array
  std::vector<std::pair<std::string, json>> members; ///< object, in order

  /// The member `key` of an object (the last one if repeated), or null.
  const json* get(const std::string& key) const {
    const json* found = nullptr;
    if (kind == object)
      for (auto& m : members)
        if (m.first == key)
          found = &m.second;
    return found;
  }
};

namespace detail {

class json_parser {
 public:
  explicit json_parser(const std::string& text) : t_(text) {}

  bool run(json& out, std::string& problem) {
    bool ok = value(out, 0);
    if (ok) {
      skip();
      ok = pos_ == t_.size() || fail("unexpected text after the end");
    }
    if (!ok)
      problem = problem_ + " at byte " + std::to_string(pos_);
    return ok;
  }

 private:
  static constexpr int max_depth = 32;

  bool fail(const char* what) {
    if (problem_.empty())
      problem_ = what;
    return false;
  }
  void skip() {
    while (pos_ < t_.size()
           && (t_[pos_] == ' ' || t_[pos_] == '\t' || t_[pos_] == '\n' || t_[pos_] == '\r'))
      ++pos_;
  }
  bool eat(char c) {
    skip();
    if (pos_ < t_.size() && t_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool word(const char* w) {
    size_t len = std::char_traits<char>::length(w);
    if (t_.compare(pos_, len, w) != 0)
      return fail("invalid literal");
    pos_ += len;
    return true;
  }

  bool value(json& out, int depth) {
    if (depth > max_depth)
      return fail("nested too deeply");
    skip();
    if (pos_ >= t_.size())
      return fail("unexpected end of text");
    switch (t_[pos_]) {
      case '{': return object(out, depth);
      case '[': return array(out, depth);
      case '"': out.kind = json::string; return string(out.s);
      case 't':
        out.kind = json::boolean;
        out.b = true;
        return word("true");
      case 'f': out.kind = json::boolean; return word("false");
      case 'n': out.kind = json::null; return word("null");
      default: out.kind = json::number; return number(out.n);
    }
  }

  bool object(json& out, int depth) {
    out.kind = json::object;
    ++pos_;
    if (eat('}'))
      return true;
    do {
      skip();
      std::pair<std::string, json> m;
      if (pos_ >= t_.size() || t_[pos_] != '"')
        return fail("expected a member name");
      if (!string(m.first))
        return false;
      if (!eat(':'))
        return fail("expected ':'");
      if (!value(m.second, depth + 1))
        return false;
      out.members.push_back(std::move(m));
    } while (eat(','));
    return eat('}') || fail("expected ',' or '}'");
  }

  bool array(json& out, int depth) {
    out.kind = json::array;
    ++pos_;
    if (eat(']'))
      return true;
    do {
      out.items.emplace_back();
      if (!value(out.items.back(), depth + 1))
        return false;
    } while (eat(','));
    return eat(']') || fail("expected ',' or ']'");
  }

  bool number(double& out) {
    size_t start = pos_;
    auto digits = [&] {
      size_t from = pos_;
      while (pos_ < t_.size() && t_[pos_] >= '0' && t_[pos_] <= '9')
        ++pos_;
      return pos_ > from;
    };
    if (pos_ < t_.size() && t_[pos_] == '-')
      ++pos_;
    if (pos_ < t_.size() && t_[pos_] == '0')
      ++pos_;
    else if (!digits())
      return fail("expected a value");
    if (pos_ < t_.size() && t_[pos_] == '.') {
      ++pos_;
      if (!digits())
        return fail("expected digits after '.'");
    }
    if (pos_ < t_.size() && (t_[pos_] == 'e' || t_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < t_.size() && (t_[pos_] == '+' || t_[pos_] == '-'))
        ++pos_;
      if (!digits())
        return fail("expected an exponent");
    }
    out = std::strtod(t_.substr(start, pos_ - start).c_str(), nullptr);
    return true;
  }

  bool hex4(unsigned& cp) {
    if (pos_ + 4 > t_.size())
      return fail("short \\u escape");
    cp = 0;
    for (int i = 0; i < 4; ++i) {
      char c = t_[pos_++];
      cp <<= 4;
      if (c >= '0' && c <= '9')
        cp |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f')
        cp |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        cp |= static_cast<unsigned>(c - 'A' + 10);
      else
        return fail("invalid \\u escape");
    }
    return true;
  }

  static void utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  bool string(std::string& out) {
    ++pos_; // the opening quote
    for (;;) {
      if (pos_ >= t_.size())
        return fail("unterminated string");
      auto c = static_cast<unsigned char>(t_[pos_++]);
      if (c == '"')
        return true;
      if (c < 0x20)
        return fail("control character in a string");
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (pos_ >= t_.size())
        return fail("unterminated string");
      switch (char e = t_[pos_++]) {
        case '"':
        case '\\':
        case '/': out += e; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = 0;
          if (!hex4(cp))
            return false;
          if (cp >= 0xd800 && cp < 0xdc00) { // a surrogate pair makes one code point
            unsigned lo = 0;
            if (t_.compare(pos_, 2, "\\u") != 0)
              return fail("unpaired surrogate");
            pos_ += 2;
            if (!hex4(lo))
              return false;
            if (lo < 0xdc00 || lo > 0xdfff)
              return fail("unpaired surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            return fail("unpaired surrogate");
          }
          utf8(out, cp);
          break;
        }
        default: return fail("invalid escape");
      }
    }
  }

  const std::string& t_;
  size_t pos_ = 0;
  std::string problem_;
};

} // namespace detail

/// Parses all of `text`; false with `problem` ("expected ':' at byte 12") when it is not JSON.
inline bool parse_json(const std::string& text, json& out, std::string& problem) {
  out = json{};
  return detail::json_parser{text}.run(out, problem);
}

} // namespace natsvisor::cli
