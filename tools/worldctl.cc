// worldctl: main() and the online subcommands (tools/worldctl.h has the exit
// codes). Each subcommand is one request (bulk put/move/del: one request per
// --batch entities) through net::Client.
//
// Bulk input (put / move / del without positional arguments): JSON lines on
// stdin, one flat object per line; blank lines are skipped.
//   put:  {"id": 1, "kind": "player", "x": 10.5, "y": 20, "z": 0, "hp": 90}
//         (z optional; other keys are columns of the kind, typed by the
//         schema: numbers, true/false, strings)
//   move: {"id": 1, "x": 11, "y": 21, "z": 0}
//   del:  {"id": 1}
// A bad line stops the load with its line number; batches sent before it stay
// applied (each batch is atomic, the load is not).
#include "tools/worldctl.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "engine/batch_builder.h"
#include "engine/schema.h"
#include "net/client.h"

namespace worlddb::worldctl {

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

namespace {

struct Global {
  std::string host = "127.0.0.1";
  uint16_t port = net::kDefaultPort;
  std::string token, token_file;
  int timeout_ms = 30000;
  bool json = false;
};

// An error with the exit code it leads to.
struct Failure {
  int code;
  std::string message;
};

using Outcome = std::optional<Failure>;  // nullopt: success

Failure Usage(std::string msg) { return {kExitUsage, std::move(msg)}; }

// Server errors carry the "server: " prefix (net/client.h); everything else
// that fails on a connection is the connection's fault.
Failure FromStatus(const Status& s) {
  const bool server = s.message().rfind("server: ", 0) == 0 ||
                      s.message().find("failed: server: ") != std::string::npos;
  return {server ? kExitServerError : kExitConnection, s.message()};
}

// ---- Formatting ----

std::string Num(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// A JSON number for a double (JSON has no NaN/inf: those become null).
std::string JsonNum(double v) { return std::isfinite(v) ? Num(v) : "null"; }

// One printed cell: its table text and its JSON text.
struct Cell {
  std::string text, json;
};
Cell TextCell(const std::string& s) { return {s, JsonString(s)}; }
Cell IntCell(uint64_t v) { return {std::to_string(v), std::to_string(v)}; }
Cell DoubleCell(double v) { return {Num(v), JsonNum(v)}; }

// Rows of named cells, printed as an aligned table or a JSON array of objects.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void Add(std::vector<Cell> row) { rows_.push_back(std::move(row)); }
  size_t size() const { return rows_.size(); }

  void PrintText(std::ostream& out) const {
    std::vector<size_t> width(header_.size());
    for (size_t i = 0; i < header_.size(); ++i) width[i] = header_[i].size();
    for (const auto& r : rows_)
      for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].text.size());
    auto line = [&](auto get) {
      std::string s;
      for (size_t i = 0; i < header_.size(); ++i) {
        const std::string& t = get(i);
        s += t;
        if (i + 1 < header_.size()) s += std::string(width[i] - t.size() + 2, ' ');
      }
      out << s << "\n";
    };
    line([&](size_t i) -> const std::string& { return header_[i]; });
    for (const auto& r : rows_) line([&](size_t i) -> const std::string& { return r[i].text; });
  }

  std::string Json() const {
    std::string s = "[";
    for (size_t r = 0; r < rows_.size(); ++r) {
      s += r ? ",{" : "{";
      for (size_t i = 0; i < header_.size(); ++i) {
        if (i) s += ",";
        s += JsonString(header_[i]) + ":" + rows_[r][i].json;
      }
      s += "}";
    }
    return s + "]";
  }

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<Cell>> rows_;
};

Cell ValueCell(const Value& v) {
  return std::visit(
      [](const auto& x) -> Cell {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) {
          return {x ? "true" : "false", x ? "true" : "false"};
        } else if constexpr (std::is_same_v<T, std::string>) {
          return TextCell(x);
        } else if constexpr (std::is_floating_point_v<T>) {
          return DoubleCell(x);
        } else {
          return {std::to_string(x), std::to_string(x)};
        }
      },
      v);
}

Cell ColumnCell(const ResultColumn& c, size_t row) {
  return std::visit(
      [&](const auto& vec) -> Cell {
        using T = typename std::decay_t<decltype(vec)>::value_type;
        if constexpr (std::is_same_v<T, uint8_t>) {
          return ValueCell(Value(vec[row] != 0));
        } else {
          return ValueCell(Value(vec[row]));
        }
      },
      c.data);
}

// ---- Parsing arguments ----

std::optional<double> ParseDouble(const std::string& s) {
  double v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

template <class T>
std::optional<T> ParseInt(const std::string& s) {
  T v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

Outcome NeedDouble(const std::string& what, const std::string& s, double* out) {
  auto v = ParseDouble(s);
  if (!v || !std::isfinite(*v)) return Usage(what + " '" + s + "' is not a finite number");
  *out = *v;
  return std::nullopt;
}

Outcome NeedId(const std::string& s, uint64_t* out) {
  auto v = ParseInt<uint64_t>(s);
  if (!v) return Usage("entity id '" + s + "' is not an unsigned 64-bit integer");
  *out = *v;
  return std::nullopt;
}

Result<ColumnType> ParseType(const std::string& s) {
  static const std::map<std::string, ColumnType> kTypes = {
      {"bool", ColumnType::kBool}, {"i32", ColumnType::kI32}, {"i64", ColumnType::kI64},
      {"f32", ColumnType::kF32},   {"f64", ColumnType::kF64}, {"string", ColumnType::kString}};
  auto it = kTypes.find(s);
  if (it == kTypes.end())
    return Status::InvalidArgument("unknown column type '" + s +
                                   "' (bool, i32, i64, f32, f64, string)");
  return it->second;
}

// Text -> a value of column type `t`.
Result<Value> ParseValue(ColumnType t, const std::string& s, const std::string& column) {
  auto bad = [&](const char* what) {
    return Status::InvalidArgument("value '" + s + "' for column '" + column + "' is not " + what);
  };
  switch (t) {
    case ColumnType::kBool:
      if (s == "true" || s == "1") return Value(true);
      if (s == "false" || s == "0") return Value(false);
      return bad("a bool (true/false)");
    case ColumnType::kI32:
      if (auto v = ParseInt<int32_t>(s)) return Value(*v);
      return bad("an i32");
    case ColumnType::kI64:
      if (auto v = ParseInt<int64_t>(s)) return Value(*v);
      return bad("an i64");
    case ColumnType::kF32:
      if (auto v = ParseDouble(s)) return Value(static_cast<float>(*v));
      return bad("a number");
    case ColumnType::kF64:
      if (auto v = ParseDouble(s)) return Value(*v);
      return bad("a number");
    case ColumnType::kString:
      return Value(s);
  }
  return bad("of a known type");
}

// "name:type[=default][:max_length]"
Result<ColumnDef> ParseColumnDef(const std::string& spec) {
  ColumnDef def;
  const size_t colon = spec.find(':');
  if (colon == std::string::npos)
    return Status::InvalidArgument("column '" + spec + "' must be name:type[=default]");
  def.name = spec.substr(0, colon);
  std::string rest = spec.substr(colon + 1);
  std::optional<std::string> dflt;
  const size_t eq = rest.find('=');
  if (eq != std::string::npos) {
    dflt = rest.substr(eq + 1);
    rest = rest.substr(0, eq);
  }
  // string columns may end in ":max_length" (after the default, if any)
  std::string* tail = dflt ? &*dflt : &rest;
  const size_t len_colon = tail->rfind(':');
  if ((rest.rfind("string", 0) == 0) && len_colon != std::string::npos) {
    auto len = ParseInt<uint32_t>(tail->substr(len_colon + 1));
    if (!len)
      return Status::InvalidArgument("column '" + def.name + "': max length '" +
                                     tail->substr(len_colon + 1) + "' is not a number");
    def.max_length = *len;
    tail->resize(len_colon);
  }
  Result<ColumnType> t = ParseType(rest);
  if (!t.ok()) return Status::InvalidArgument("column '" + def.name + "': " + t.status().message());
  def.type = t.value();
  def.default_value = ZeroValue(def.type);
  if (dflt) {
    Result<Value> v = ParseValue(def.type, *dflt, def.name);
    if (!v.ok()) return v.status();
    def.default_value = v.value();
  }
  return def;
}

// ---- A connection and the schema it serves ----

struct Session {
  std::unique_ptr<net::Client> client;
  std::optional<net::KindsInfo> kinds;

  Outcome Open(const Global& g) {
    net::ClientOptions o;
    o.token = g.token;
    if (!g.token_file.empty()) {
      std::ifstream in(g.token_file);
      if (!in || !std::getline(in, o.token) || o.token.empty())
        return Usage("cannot read a token from --token-file '" + g.token_file + "'");
      while (!o.token.empty() && (o.token.back() == '\r' || o.token.back() == ' '))
        o.token.pop_back();
    }
    o.connect_timeout_ms = g.timeout_ms;
    o.io_timeout_ms = g.timeout_ms;
    auto c = net::Client::Connect(g.host, g.port, o);
    if (!c.ok()) return FromStatus(c.status());
    client = std::move(c.value());
    return std::nullopt;
  }
  Failure Fail(const Status& s) const {
    return {client->broken() ? kExitConnection : kExitServerError, s.message()};
  }
  // Column `name` of `kind`, from the server's schema (fetched once).
  Result<const ColumnDef*> Column(const std::string& kind, const std::string& name) {
    if (!kinds) {
      auto k = client->ListKinds();
      if (!k.ok()) return k.status();
      kinds = std::move(k.value());
    }
    for (const KindDef& def : kinds->kinds) {
      if (def.name != kind) continue;
      for (const ColumnDef& c : def.columns)
        if (c.name == name) return &c;
      return Status::NotFound("kind '" + kind + "' has no column '" + name + "'");
    }
    return Status::NotFound("no kind '" + kind + "'");
  }
};

Outcome SchemaFailure(Session& s, const Status& st) {
  if (s.client->broken()) return Failure{kExitConnection, st.message()};
  // Unknown kinds and columns are found before anything is sent.
  if (st.code() == StatusCode::kNotFound) return Usage(st.message());
  return Failure{kExitServerError, st.message()};
}

// "hp<50", "name==orc", "alive!=false"
Outcome ParsePredicate(Session& s, const std::string& kind, const std::string& text,
                       Predicate* out) {
  static const std::pair<const char*, CompareOp> kOps[] = {
      {"==", CompareOp::kEq}, {"!=", CompareOp::kNe}, {"<=", CompareOp::kLe},
      {">=", CompareOp::kGe}, {"<", CompareOp::kLt},  {">", CompareOp::kGt},
      {"=", CompareOp::kEq}};
  if (kind.empty()) return Usage("--where needs --kind (predicates name columns of one kind)");
  for (const auto& [op, code] : kOps) {
    const size_t at = text.find(op);
    if (at == std::string::npos || at == 0) continue;
    out->column = text.substr(0, at);
    out->op = code;
    auto col = s.Column(kind, out->column);
    if (!col.ok()) return SchemaFailure(s, col.status());
    auto v = ParseValue(col.value()->type, text.substr(at + std::string(op).size()), out->column);
    if (!v.ok()) return Usage(v.status().message());
    out->value = v.value();
    return std::nullopt;
  }
  return Usage("--where '" + text + "' must be COLUMN OP VALUE with OP one of == != < <= > >=");
}

// ---- Minimal JSON-lines reader: one flat object per line ----

using JsonValue = std::variant<std::nullptr_t, bool, double, std::string>;

struct JsonLine {
  std::vector<std::pair<std::string, JsonValue>> fields;
  // The original text of number fields, so that 64-bit ids keep every digit.
  std::map<std::string, std::string> number_text;
};

class JsonParser {
 public:
  explicit JsonParser(const std::string& s) : s_(s) {}
  Status Parse(JsonLine* out) {
    Skip();
    if (!Eat('{')) return Err("expected '{'");
    Skip();
    if (Eat('}')) return Finish();
    for (;;) {
      Skip();
      std::string key;
      WORLDDB_RETURN_IF_ERROR(String(&key));
      Skip();
      if (!Eat(':')) return Err("expected ':' after key \"" + key + "\"");
      Skip();
      JsonValue v;
      std::string text;
      WORLDDB_RETURN_IF_ERROR(ParseValueInto(&v, &text));
      for (const auto& f : out->fields)
        if (f.first == key) return Err("key \"" + key + "\" appears twice");
      if (std::holds_alternative<double>(v)) out->number_text[key] = text;
      out->fields.emplace_back(std::move(key), std::move(v));
      Skip();
      if (Eat(',')) continue;
      if (Eat('}')) return Finish();
      return Err("expected ',' or '}'");
    }
  }

 private:
  Status Finish() {
    Skip();
    return i_ == s_.size() ? Status::Ok() : Err("text after the object");
  }
  Status Err(const std::string& what) const {
    return Status::InvalidArgument(what + " at column " + std::to_string(i_ + 1));
  }
  void Skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  bool Eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  Status String(std::string* out) {
    if (!Eat('"')) return Err("expected a string");
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (i_ >= s_.size()) break;
      char e = s_[i_++];
      switch (e) {
        case 'n':
          *out += '\n';
          break;
        case 't':
          *out += '\t';
          break;
        case 'r':
          *out += '\r';
          break;
        case 'b':
          *out += '\b';
          break;
        case 'f':
          *out += '\f';
          break;
        case 'u': {
          if (i_ + 4 > s_.size()) return Err("short \\u escape");
          auto cp = ParseHex(s_.substr(i_, 4));
          if (!cp) return Err("bad \\u escape");
          i_ += 4;
          AppendUtf8(*cp, out);
          break;
        }
        default:
          *out += e;  // \" \\ \/
      }
    }
    if (!Eat('"')) return Err("unterminated string");
    return Status::Ok();
  }
  static std::optional<uint32_t> ParseHex(const std::string& h) {
    uint32_t v = 0;
    auto r = std::from_chars(h.data(), h.data() + h.size(), v, 16);
    if (r.ec != std::errc() || r.ptr != h.data() + h.size()) return std::nullopt;
    return v;
  }
  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      *out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      *out += static_cast<char>(0xC0 | (cp >> 6));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      *out += static_cast<char>(0xE0 | (cp >> 12));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  Status ParseValueInto(JsonValue* v, std::string* text) {
    if (i_ < s_.size() && s_[i_] == '"') {
      std::string str;
      WORLDDB_RETURN_IF_ERROR(String(&str));
      *v = std::move(str);
      return Status::Ok();
    }
    for (const char* word : {"true", "false", "null"}) {
      const std::string w(word);
      if (s_.compare(i_, w.size(), w) == 0) {
        i_ += w.size();
        if (w == "null") {
          *v = nullptr;
        } else {
          *v = (w == "true");
        }
        return Status::Ok();
      }
    }
    const size_t start = i_;
    while (i_ < s_.size() && std::string_view("+-.eE0123456789").find(s_[i_]) != std::string::npos)
      ++i_;
    *text = s_.substr(start, i_ - start);
    auto d = ParseDouble(*text);
    if (text->empty() || !d) return Err("expected a value");
    *v = *d;
    return Status::Ok();
  }

  const std::string& s_;
  size_t i_ = 0;
};

// ---- Subcommands ----

struct QueryArgs {
  std::string kind;
  std::vector<std::string> where;
  std::vector<std::string> columns;
  uint64_t limit = 0;
  bool order = false;
};

void AddQueryFlags(CLI::App* sub, QueryArgs* a, bool with_limit) {
  sub->add_option("--kind", a->kind, "only entities of this kind");
  sub->add_option("--where", a->where, "predicate COLUMN OP VALUE (needs --kind), repeatable");
  sub->add_option("--columns", a->columns, "columns to return (needs --kind)")->delimiter(',');
  if (with_limit) sub->add_option("--limit", a->limit, "at most this many rows (0: all)");
}

Outcome FillQuery(Session& s, const QueryArgs& a, Query* q) {
  q->kind = a.kind;
  q->columns = a.columns;
  q->limit = a.limit;
  if (!a.columns.empty() && a.kind.empty()) return Usage("--columns needs --kind");
  for (const std::string& w : a.where) {
    Predicate p;
    if (auto f = ParsePredicate(s, a.kind, w, &p)) return f;
    q->where.push_back(std::move(p));
  }
  return std::nullopt;
}

// `missing` (get only) lists the ids not found.
Outcome PrintRows(Session& s, const QueryResult& r, bool json, bool distance,
                  const std::vector<uint64_t>* missing = nullptr) {
  if (!s.kinds) {
    auto k = s.client->ListKinds();
    if (!k.ok()) return s.Fail(k.status());
    s.kinds = std::move(k.value());
  }
  std::vector<std::string> header = {"id", "kind", "x", "y", "z"};
  if (distance && r.distance.size() == r.rows()) header.push_back("distance");
  for (const ResultColumn& c : r.columns) header.push_back(c.name);
  Table t(header);
  for (size_t i = 0; i < r.rows(); ++i) {
    std::vector<Cell> row;
    row.push_back(IntCell(r.ids[i]));
    const uint16_t k = i < r.kinds.size() ? r.kinds[i] : 0;
    row.push_back(
        TextCell(k < s.kinds->kinds.size() ? s.kinds->kinds[k].name : "#" + std::to_string(k)));
    row.push_back(DoubleCell(i < r.x.size() ? r.x[i] : 0));
    row.push_back(DoubleCell(i < r.y.size() ? r.y[i] : 0));
    row.push_back(DoubleCell(i < r.z.size() ? r.z[i] : 0));
    if (distance && r.distance.size() == r.rows()) row.push_back(DoubleCell(r.distance[i]));
    for (const ResultColumn& c : r.columns) row.push_back(ColumnCell(c, i));
    t.Add(std::move(row));
  }
  if (json) {
    std::cout << "{\"count\":" << r.count << ",\"truncated\":" << (r.truncated ? "true" : "false")
              << ",\"rows\":" << t.Json();
    if (missing) {
      std::cout << ",\"missing\":[";
      for (size_t i = 0; i < missing->size(); ++i) std::cout << (i ? "," : "") << (*missing)[i];
      std::cout << "]";
    }
    std::cout << "}\n";
  } else {
    t.PrintText(std::cout);
    std::cout << "(" << r.rows() << " row" << (r.rows() == 1 ? "" : "s");
    if (r.truncated) std::cout << ", truncated by the limit; at least " << r.count << " match";
    std::cout << ")\n";
  }
  return std::nullopt;
}

Outcome RunQuery(Session& s, const Query& q, bool json) {
  auto r = s.client->Query(q);
  if (!r.ok()) return s.Fail(r.status());
  return PrintRows(s, r.value(), json, q.shape != Shape::kRect);
}

void PrintKeyValues(const std::vector<std::pair<std::string, Cell>>& kv, bool json) {
  if (json) {
    std::string out = "{";
    for (size_t i = 0; i < kv.size(); ++i)
      out += (i ? "," : "") + JsonString(kv[i].first) + ":" + kv[i].second.json;
    std::cout << out << "}\n";
    return;
  }
  size_t w = 0;
  for (const auto& [k, v] : kv) w = std::max(w, k.size());
  for (const auto& [k, v] : kv)
    std::cout << k << std::string(w - k.size() + 2, ' ') << v.text << "\n";
}

// "1h02m", "5m03s", "12s".
std::string Age(double seconds) {
  if (!(seconds >= 0)) seconds = 0;
  const uint64_t t = static_cast<uint64_t>(seconds);
  char buf[48];
  if (t >= 86400) {
    std::snprintf(buf, sizeof buf, "%llud%02lluh", static_cast<unsigned long long>(t / 86400),
                  static_cast<unsigned long long>(t % 86400 / 3600));
  } else if (t >= 3600) {
    std::snprintf(buf, sizeof buf, "%lluh%02llum", static_cast<unsigned long long>(t / 3600),
                  static_cast<unsigned long long>(t % 3600 / 60));
  } else if (t >= 60) {
    std::snprintf(buf, sizeof buf, "%llum%02llus", static_cast<unsigned long long>(t / 60),
                  static_cast<unsigned long long>(t % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%llus", static_cast<unsigned long long>(t));
  }
  return buf;
}

// "12.3 MiB"
std::string HumanBytes(double b) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, kUnits[u]);
  return buf;
}

std::string Fixed1(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// The q-quantile of a latency histogram (bucket counts, the last above every
// bound), interpolated linearly inside its bucket as Prometheus's
// histogram_quantile does; NaN when empty, +inf when it falls past the last
// bound.
double QuantileNs(const std::vector<uint64_t>& bounds, const std::vector<uint64_t>& counts,
                  double q) {
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  if (total == 0 || counts.size() != bounds.size() + 1) return NAN;
  const double rank = q * static_cast<double>(total);
  double seen = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double next = seen + static_cast<double>(counts[i]);
    if (next >= rank && counts[i] > 0) {
      if (i == bounds.size()) return INFINITY;
      const double lo = i == 0 ? 0 : static_cast<double>(bounds[i - 1]);
      const double hi = static_cast<double>(bounds[i]);
      return lo + (hi - lo) * (rank - seen) / static_cast<double>(counts[i]);
    }
    seen = next;
  }
  return INFINITY;
}

std::string Millis(double ns) {
  if (std::isnan(ns)) return "-";
  if (std::isinf(ns)) return "> 10 s";
  char buf[32];
  std::snprintf(buf, sizeof buf, ns < 1e7 ? "%.3f ms" : "%.1f ms", ns / 1e6);
  return buf;
}

// Live figures at a glance: two samples `interval_s` apart give the rates
// and the p99 over the interval (0: one sample, no rates, p99 since start).
Outcome CmdStats(Session& s, bool json, double interval_s) {
  auto first = s.client->Stats();
  if (!first.ok()) return s.Fail(first.status());
  const auto t0 = std::chrono::steady_clock::now();
  net::ServerStats v = first.value();
  double dt = 0;
  net::ServerStats a = v;
  if (interval_s > 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(interval_s));
    auto second = s.client->Stats();
    if (!second.ok()) return s.Fail(second.status());
    dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    v = second.value();
  }
  auto rate = [&](uint64_t before, uint64_t after) {
    return dt > 0 && after >= before ? static_cast<double>(after - before) / dt : 0.0;
  };
  const double queries_s = rate(a.queries, v.queries);
  const double writes_s = rate(a.batches_applied, v.batches_applied);
  const double ops_s = rate(a.operations_applied, v.operations_applied);
  const double log_s = rate(a.log_bytes, v.log_bytes);
  // Per request type: rate and p99 over the interval (since start without one).
  struct TypeFigures {
    std::string type;
    uint64_t requests = 0, errors = 0;
    double per_s = 0, p99_ns = NAN;
  };
  std::vector<TypeFigures> types;
  for (const auto& t : v.requests) {
    TypeFigures f{t.type, t.requests, t.errors};
    std::vector<uint64_t> counts = t.latency_counts;
    bool seen_before = false;
    for (const auto& before : a.requests) {
      if (before.type != t.type || dt == 0) continue;
      seen_before = true;
      f.per_s = rate(before.requests, t.requests);
      if (before.latency_counts.size() == counts.size()) {
        for (size_t i = 0; i < counts.size(); ++i) {
          const uint64_t b = before.latency_counts[i];
          counts[i] = counts[i] >= b ? counts[i] - b : 0;
        }
      }
    }
    // A type first asked for during the interval: all of it is new.
    if (dt > 0 && !seen_before) f.per_s = static_cast<double>(t.requests) / dt;
    f.p99_ns = QuantileNs(t.latency_bounds_ns, counts, 0.99);
    types.push_back(f);
  }
  const double per_entity =
      v.entities ? static_cast<double>(v.memory_bytes) / static_cast<double>(v.entities) : 0;
  const bool has_log = v.durability != "none" && !v.durability.empty();
  const bool has_snapshot = v.snapshot_lsn != 0 || v.snapshot_time_us != 0;
  const double now_us = static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count());
  const double snapshot_age_s =
      has_snapshot ? (now_us - static_cast<double>(v.snapshot_time_us)) / 1e6 : 0;

  if (json) {
    std::string out = "{\"entities\":" + std::to_string(v.entities) + ",\"per_kind\":{";
    for (size_t i = 0; i < v.per_kind.size(); ++i)
      out += (i ? "," : "") + JsonString(v.per_kind[i].first) + ":" +
             std::to_string(v.per_kind[i].second);
    out += "},\"memory_bytes\":" + std::to_string(v.memory_bytes) +
           ",\"memory_bytes_per_entity\":" + JsonNum(per_entity) +
           ",\"schema_version\":" + std::to_string(v.schema_version) +
           ",\"uptime_s\":" + JsonNum(static_cast<double>(v.uptime_ms) / 1000) +
           ",\"connections\":" + std::to_string(v.connections) +
           ",\"writable\":" + (v.writable ? "true" : "false") +
           ",\"not_writable_reason\":" + JsonString(v.not_writable_reason) +
           ",\"queries\":" + std::to_string(v.queries) +
           ",\"batches_applied\":" + std::to_string(v.batches_applied) +
           ",\"batches_refused\":" + std::to_string(v.batches_refused) +
           ",\"operations_applied\":" + std::to_string(v.operations_applied) +
           ",\"interval_s\":" + JsonNum(dt) + ",\"queries_per_s\":" + JsonNum(queries_s) +
           ",\"writes_per_s\":" + JsonNum(writes_s) + ",\"operations_per_s\":" + JsonNum(ops_s) +
           ",\"log\":{\"durability\":" + JsonString(v.durability) +
           ",\"last_lsn\":" + std::to_string(v.log_last_lsn) +
           ",\"durable_lsn\":" + std::to_string(v.log_durable_lsn) +
           ",\"bytes\":" + std::to_string(v.log_bytes) + ",\"bytes_per_s\":" + JsonNum(log_s) +
           "},\"snapshot\":" +
           (has_snapshot ? "{\"lsn\":" + std::to_string(v.snapshot_lsn) +
                               ",\"time_us\":" + std::to_string(v.snapshot_time_us) +
                               ",\"age_s\":" + JsonNum(snapshot_age_s) +
                               ",\"bytes\":" + std::to_string(v.snapshot_bytes) + "}"
                         : std::string("null")) +
           ",\"snapshot_error\":" + JsonString(v.snapshot_error) + ",\"requests\":[";
    for (size_t i = 0; i < types.size(); ++i) {
      const TypeFigures& f = types[i];
      out += std::string(i ? "," : "") + "{\"type\":" + JsonString(f.type) +
             ",\"requests\":" + std::to_string(f.requests) +
             ",\"errors\":" + std::to_string(f.errors) + ",\"per_s\":" + JsonNum(f.per_s) +
             ",\"p99_s\":" + JsonNum(f.p99_ns / 1e9) + "}";
    }
    out += "]}";
    std::cout << out << "\n";
    return std::nullopt;
  }

  std::vector<std::pair<std::string, Cell>> kv = {
      {"uptime", TextCell(Age(static_cast<double>(v.uptime_ms) / 1000))},
      {"writable", TextCell(v.writable ? "yes" : "NO: " + v.not_writable_reason)},
      {"connections", IntCell(v.connections)},
      {"entities", IntCell(v.entities)},
      {"memory", TextCell(HumanBytes(static_cast<double>(v.memory_bytes)) + " (" +
                          Fixed1(per_entity) + " bytes per entity)")},
      {"queries/s", TextCell(dt > 0 ? Fixed1(queries_s) : "-")},
      {"writes/s",
       TextCell(dt > 0 ? Fixed1(writes_s) + " batches, " + Fixed1(ops_s) + " operations" : "-")},
      {"log", TextCell(has_log ? v.durability + ", LSN " + std::to_string(v.log_last_lsn) +
                                     " (durable " + std::to_string(v.log_durable_lsn) + "), " +
                                     HumanBytes(static_cast<double>(v.log_bytes)) +
                                     " written since start" +
                                     (dt > 0 ? ", " + HumanBytes(log_s) + "/s" : "")
                               : "off (durability none)")},
      {"snapshot", TextCell(has_snapshot ? "LSN " + std::to_string(v.snapshot_lsn) + ", " +
                                               Age(snapshot_age_s) + " old, " +
                                               HumanBytes(static_cast<double>(v.snapshot_bytes))
                                         : "none yet")},
      {"snapshot error", TextCell(v.snapshot_error.empty() ? "none" : v.snapshot_error)},
  };
  PrintKeyValues(kv, false);
  if (dt == 0) std::cout << "(rates need two samples: --interval SECONDS)\n";
  std::cout << "\n";
  if (!types.empty()) {
    Table r(
        {"request", "per s", "total", "errors", dt > 0 ? "p99 (interval)" : "p99 (since start)"});
    for (const TypeFigures& f : types) {
      r.Add({TextCell(f.type), TextCell(dt > 0 ? Fixed1(f.per_s) : "-"), IntCell(f.requests),
             IntCell(f.errors), TextCell(Millis(f.p99_ns))});
    }
    r.PrintText(std::cout);
    std::cout << "\n";
  }
  Table t({"kind", "entities", "share"});
  for (const auto& [kind, n] : v.per_kind) {
    t.Add({TextCell(kind), IntCell(n),
           TextCell(v.entities
                        ? Fixed1(100.0 * static_cast<double>(n) / static_cast<double>(v.entities)) +
                              "%"
                        : "-")});
  }
  t.PrintText(std::cout);

  return std::nullopt;
}

Outcome CmdKinds(Session& s, bool json) {
  auto k = s.client->ListKinds();
  if (!k.ok()) return s.Fail(k.status());
  Table t({"kind", "column", "type", "default", "max_length"});
  for (const KindDef& def : k->kinds) {
    if (def.columns.empty())
      t.Add({TextCell(def.name), TextCell(""), TextCell(""), TextCell(""), TextCell("")});
    for (const ColumnDef& c : def.columns)
      t.Add({TextCell(def.name), TextCell(c.name), TextCell(ColumnTypeName(c.type)),
             ValueCell(c.default_value), IntCell(c.max_length)});
  }
  if (json) {
    std::cout << "{\"schema_version\":" << k->schema_version << ",\"columns\":" << t.Json()
              << "}\n";
  } else {
    t.PrintText(std::cout);
    std::cout << "(schema version " << k->schema_version << ", " << k->kinds.size() << " kind"
              << (k->kinds.size() == 1 ? "" : "s") << ")\n";
  }
  return std::nullopt;
}

Outcome PrintApply(const net::ApplyResult& a, bool json) {
  PrintKeyValues({{"created", IntCell(a.created)},
                  {"replaced", IntCell(a.replaced)},
                  {"moved", IntCell(a.moved)},
                  {"set", IntCell(a.set)},
                  {"deleted", IntCell(a.deleted)},
                  {"delete_missing", IntCell(a.delete_missing)},
                  {"ticket", IntCell(a.ticket)}},
                 json);
  return std::nullopt;
}

enum class WriteOp { kPut, kMove, kDel };

// Cells for a put, typed by the kind's schema.
Outcome TypedCells(Session& s, const std::string& kind,
                   const std::vector<std::pair<std::string, std::string>>& raw, Cells* out) {
  for (const auto& [name, text] : raw) {
    auto col = s.Column(kind, name);
    if (!col.ok()) return SchemaFailure(s, col.status());
    auto v = ParseValue(col.value()->type, text, name);
    if (!v.ok()) return Usage(v.status().message());
    out->emplace_back(name, v.value());
  }
  return std::nullopt;
}

// One JSON line into `batch`.
Outcome AddJsonLine(Session& s, WriteOp op, const JsonLine& line, BatchBuilder* batch) {
  uint64_t id = 0;
  bool have_id = false, have_x = false, have_y = false;
  double x = 0, y = 0, z = 0;
  std::string kind;
  std::vector<std::pair<std::string, JsonValue>> cols;
  for (const auto& [key, v] : line.fields) {
    auto number = [&, &key = key, &v = v](double* out) -> Outcome {
      if (!std::holds_alternative<double>(v)) return Usage("\"" + key + "\" must be a number");
      *out = std::get<double>(v);
      return std::nullopt;
    };
    if (key == "id") {
      if (!std::holds_alternative<double>(v)) return Usage("\"id\" must be a number");
      if (auto f = NeedId(line.number_text.at(key), &id)) return f;
      have_id = true;
    } else if (key == "x" && op != WriteOp::kDel) {
      if (auto f = number(&x)) return f;
      have_x = true;
    } else if (key == "y" && op != WriteOp::kDel) {
      if (auto f = number(&y)) return f;
      have_y = true;
    } else if (key == "z" && op != WriteOp::kDel) {
      if (auto f = number(&z)) return f;
    } else if (key == "kind" && op == WriteOp::kPut) {
      if (!std::holds_alternative<std::string>(v)) return Usage("\"kind\" must be a string");
      kind = std::get<std::string>(v);
    } else if (op == WriteOp::kPut) {
      cols.emplace_back(key, v);
    } else {
      return Usage("unexpected key \"" + key + "\" for this command");
    }
  }
  if (!have_id) return Usage("missing \"id\"");
  if (op == WriteOp::kDel) {
    batch->Delete(id);
    return std::nullopt;
  }
  if (!have_x || !have_y) return Usage("missing \"x\" or \"y\"");
  if (op == WriteOp::kMove) {
    batch->Move(id, x, y, z);
    return std::nullopt;
  }
  if (kind.empty()) return Usage("missing \"kind\"");
  Cells cells;
  for (const auto& [name, v] : cols) {
    auto col = s.Column(kind, name);
    if (!col.ok()) return SchemaFailure(s, col.status());
    const ColumnType t = col.value()->type;
    Value value;
    if (std::holds_alternative<bool>(v) && t == ColumnType::kBool) {
      value = std::get<bool>(v);
    } else if (std::holds_alternative<std::string>(v) && t == ColumnType::kString) {
      value = std::get<std::string>(v);
    } else if (std::holds_alternative<double>(v) && t != ColumnType::kBool &&
               t != ColumnType::kString) {
      auto parsed = ParseValue(t, line.number_text.at(name), name);
      if (!parsed.ok()) return Usage(parsed.status().message());
      value = parsed.value();
    } else {
      return Usage("\"" + name + "\" must be of type " + std::string(ColumnTypeName(t)));
    }
    cells.emplace_back(name, std::move(value));
  }
  batch->Upsert(id, kind, x, y, z, cells);
  return std::nullopt;
}

Outcome BulkWrite(Session& s, WriteOp op, size_t batch_size, bool json) {
  BatchBuilder batch;
  net::ApplyResult total;
  auto send = [&]() -> Outcome {
    if (batch.ops() == 0) return std::nullopt;
    auto r = s.client->Apply(batch.Finish());
    if (!r.ok()) return s.Fail(r.status());
    total.created += r->created;
    total.replaced += r->replaced;
    total.moved += r->moved;
    total.set += r->set;
    total.deleted += r->deleted;
    total.delete_missing += r->delete_missing;
    total.ticket = r->ticket;
    return std::nullopt;
  };
  std::string text;
  size_t line_no = 0;
  while (std::getline(std::cin, text)) {
    ++line_no;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    JsonLine line;
    Status st = JsonParser(text).Parse(&line);
    Outcome f = st.ok() ? AddJsonLine(s, op, line, &batch) : Usage(st.message());
    if (f) {
      f->message = "stdin line " + std::to_string(line_no) + ": " + f->message;
      return f;
    }
    if (batch.ops() >= batch_size)
      if (auto g = send()) return g;
  }
  if (auto g = send()) return g;
  return PrintApply(total, json);
}

struct WriteArgs {
  std::vector<std::string> pos;
  std::vector<std::string> set;
  size_t batch = 1000;
};

Outcome CmdWrite(Session& s, WriteOp op, const WriteArgs& a, bool json) {
  if (a.pos.empty()) return BulkWrite(s, op, a.batch, json);
  BatchBuilder batch;
  if (op == WriteOp::kDel) {
    for (const std::string& p : a.pos) {
      uint64_t id;
      if (auto f = NeedId(p, &id)) return f;
      batch.Delete(id);
    }
  } else {
    const size_t first = op == WriteOp::kPut ? 2 : 1;  // index of x
    if (a.pos.size() < first + 2 || a.pos.size() > first + 3)
      return Usage(op == WriteOp::kPut ? "put needs ID KIND X Y [Z] (or JSON lines on stdin)"
                                       : "move needs ID X Y [Z] (or JSON lines on stdin)");
    uint64_t id;
    double x, y, z = 0;
    if (auto f = NeedId(a.pos[0], &id)) return f;
    if (auto f = NeedDouble("x", a.pos[first], &x)) return f;
    if (auto f = NeedDouble("y", a.pos[first + 1], &y)) return f;
    if (a.pos.size() == first + 3)
      if (auto f = NeedDouble("z", a.pos[first + 2], &z)) return f;
    if (op == WriteOp::kMove) {
      batch.Move(id, x, y, z);
    } else {
      std::vector<std::pair<std::string, std::string>> raw;
      for (const std::string& kv : a.set) {
        const size_t eq = kv.find('=');
        if (eq == std::string::npos || eq == 0)
          return Usage("--set '" + kv + "' must be COLUMN=VALUE");
        raw.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
      }
      Cells cells;
      if (auto f = TypedCells(s, a.pos[1], raw, &cells)) return f;
      batch.Upsert(id, a.pos[1], x, y, z, cells);
    }
  }
  auto r = s.client->Apply(batch.Finish());
  if (!r.ok()) return s.Fail(r.status());
  return PrintApply(r.value(), json);
}

std::vector<double> Numbers(const std::vector<std::string>& pos, Outcome* f,
                            const std::vector<std::string>& names) {
  std::vector<double> out(pos.size());
  for (size_t i = 0; i < pos.size() && !*f; ++i)
    *f = NeedDouble(i < names.size() ? names[i] : "argument", pos[i], &out[i]);
  return out;
}

// Registers every online subcommand. Each runs `body` with a connected session.
void AddOnlineCommands(CLI::App& app, Global* g, int* exit_code) {
  auto run = [g, exit_code](const std::function<Outcome(Session&)>& body) {
    Session s;
    Outcome f = s.Open(*g);
    if (!f) f = body(s);
    if (f) {
      std::cerr << "worldctl: " << f->message << "\n";
      *exit_code = f->code;
    } else {
      *exit_code = kExitOk;
    }
  };
  auto usage = [exit_code](const std::string& msg) {
    std::cerr << "worldctl: " << msg << "\n";
    *exit_code = kExitUsage;
  };

  app.add_subcommand("ping", "check that the server answers")->callback([=] {
    run([&](Session& s) -> Outcome {
      Status st = s.client->Ping();
      if (!st.ok()) return s.Fail(st);
      if (g->json) {
        std::cout << "{\"ok\":true,\"role\":" << JsonString(s.client->role()) << "}\n";
      } else {
        std::cout << "pong (role " << s.client->role() << ")\n";
      }
      return std::nullopt;
    });
  });
  {
    auto* sub = app.add_subcommand("stats",
                                   "live figures: entities, memory, rates, log and snapshot state");
    auto interval = std::make_shared<double>(1.0);
    sub->add_option("--interval", *interval,
                    "seconds between the two samples the rates come from; 0 = one sample")
        ->check(CLI::Range(0.0, 3600.0))
        ->capture_default_str();
    sub->callback([=] { run([&](Session& s) { return CmdStats(s, g->json, *interval); }); });
  }
  app.add_subcommand("kinds", "the kinds and their columns")->callback([=] {
    run([&](Session& s) { return CmdKinds(s, g->json); });
  });

  {
    auto* sub = app.add_subcommand("create-kind", "create a kind");
    auto name = std::make_shared<std::string>();
    auto cols = std::make_shared<std::vector<std::string>>();
    sub->add_option("name", *name, "kind name")->required();
    sub->add_option("--column", *cols,
                    "NAME:TYPE[=DEFAULT][:MAXLEN] (types bool i32 i64 f32 f64 "
                    "string; MAXLEN strings only), repeatable");
    sub->callback([=] {
      KindDef def{*name, {}};
      for (const std::string& c : *cols) {
        auto d = ParseColumnDef(c);
        if (!d.ok()) return usage(d.status().message());
        def.columns.push_back(d.value());
      }
      run([&](Session& s) -> Outcome {
        auto v = s.client->CreateKind(def);
        if (!v.ok()) return s.Fail(v.status());
        PrintKeyValues({{"schema_version", IntCell(v.value())}}, g->json);
        return std::nullopt;
      });
    });
  }
  {
    auto* sub = app.add_subcommand("alter-kind", "add and drop columns of a kind");
    auto name = std::make_shared<std::string>();
    auto add = std::make_shared<std::vector<std::string>>();
    auto drop = std::make_shared<std::vector<std::string>>();
    sub->add_option("name", *name, "kind name")->required();
    sub->add_option("--add", *add, "NAME:TYPE[=DEFAULT][:MAXLEN], repeatable");
    sub->add_option("--drop", *drop, "column to drop, repeatable");
    sub->callback([=] {
      if (add->empty() && drop->empty()) return usage("alter-kind needs --add or --drop");
      std::vector<ColumnDef> defs;
      for (const std::string& c : *add) {
        auto d = ParseColumnDef(c);
        if (!d.ok()) return usage(d.status().message());
        defs.push_back(d.value());
      }
      run([&](Session& s) -> Outcome {
        auto v = s.client->AlterKind(*name, defs, *drop);
        if (!v.ok()) return s.Fail(v.status());
        PrintKeyValues({{"schema_version", IntCell(v.value())}}, g->json);
        return std::nullopt;
      });
    });
  }

  const std::pair<const char*, WriteOp> kWrites[] = {
      {"put", WriteOp::kPut}, {"move", WriteOp::kMove}, {"del", WriteOp::kDel}};
  for (const auto& [cmd, op] : kWrites) {
    const char* help = op == WriteOp::kPut    ? "create or replace an entity: ID KIND X Y [Z]"
                       : op == WriteOp::kMove ? "move an entity: ID X Y [Z]"
                                              : "delete entities: ID...";
    auto* sub =
        app.add_subcommand(cmd, std::string(help) + "; without arguments, JSON lines from stdin");
    auto a = std::make_shared<WriteArgs>();
    sub->add_option("args", a->pos, "see above");
    if (op == WriteOp::kPut) sub->add_option("--set", a->set, "COLUMN=VALUE, repeatable");
    sub->add_option("--batch", a->batch, "stdin: entities per write batch")
        ->check(CLI::Range(size_t{1}, size_t{1000000}));
    sub->callback([=, op = op] { run([&](Session& s) { return CmdWrite(s, op, *a, g->json); }); });
  }

  {
    auto* sub = app.add_subcommand("get", "entities by id");
    auto ids = std::make_shared<std::vector<std::string>>();
    auto q = std::make_shared<QueryArgs>();
    sub->add_option("ids", *ids, "entity ids")->required();
    AddQueryFlags(sub, q.get(), false);
    sub->callback([=] {
      run([&](Session& s) -> Outcome {
        std::vector<uint64_t> v;
        for (const std::string& i : *ids) {
          uint64_t id;
          if (auto f = NeedId(i, &id)) return f;
          v.push_back(id);
        }
        if (!q->columns.empty() && q->kind.empty()) return Usage("--columns needs --kind");
        std::vector<uint64_t> missing;
        auto r = s.client->GetByIds(v, q->kind, q->columns, &missing);
        if (!r.ok()) return s.Fail(r.status());
        if (auto f = PrintRows(s, r.value(), g->json, false, &missing)) return f;
        if (!missing.empty() && !g->json) {
          std::cout << "missing:";
          for (uint64_t m : missing) std::cout << " " << m;
          std::cout << "\n";
        }
        return std::nullopt;
      });
    });
  }

  struct ShapeCmd {
    const char* name;
    const char* help;
    std::vector<std::string> args;
  };
  const ShapeCmd kShapes[] = {
      {"radius", "entities within R of (X, Y): X Y R", {"x", "y", "radius"}},
      {"rect",
       "entities in a rectangle: MIN_X MIN_Y MAX_X MAX_Y",
       {"min_x", "min_y", "max_x", "max_y"}},
      {"knn", "the K nearest entities to (X, Y): X Y K", {"x", "y", "k"}},
      {"count", "count entities in a circle (X Y R) or rectangle (MIN_X MIN_Y MAX_X MAX_Y)", {}}};
  for (const ShapeCmd& sc : kShapes) {
    auto* sub = app.add_subcommand(sc.name, sc.help);
    auto pos = std::make_shared<std::vector<std::string>>();
    auto q = std::make_shared<QueryArgs>();
    sub->add_option("args", *pos, "numbers, see above")->required();
    AddQueryFlags(sub, q.get(), std::string(sc.name) != "count");
    if (std::string(sc.name) == "radius") sub->add_flag("--order", q->order, "nearest first");
    const std::string name = sc.name;
    const std::vector<std::string> names = sc.args;
    sub->callback([=] {
      const size_t want = names.size();
      if (want != 0 && pos->size() != want)
        return usage(name + " needs " + std::to_string(want) + " numbers, got " +
                     std::to_string(pos->size()));
      if (want == 0 && pos->size() != 3 && pos->size() != 4)
        return usage("count needs X Y R (circle) or MIN_X MIN_Y MAX_X MAX_Y (rectangle)");
      Outcome f;
      std::vector<double> v = Numbers(*pos, &f, names);
      if (f) return usage(f->message);
      Query query;
      if (name == "radius" || (name == "count" && v.size() == 3)) {
        query = Query::Circle(v[0], v[1], v[2]);
        query.order_by_distance = q->order;
      } else if (name == "knn") {
        if (v[2] < 1 || v[2] > 1e6 || v[2] != std::floor(v[2]))
          return usage("k '" + (*pos)[2] + "' must be an integer in 1..1000000");
        query = Query::Nearest(v[0], v[1], static_cast<uint32_t>(v[2]));
      } else {
        query = Query::InRect({v[0], v[1], v[2], v[3]});
      }
      run([&](Session& s) -> Outcome {
        if (auto e = FillQuery(s, *q, &query)) return e;
        if (name != "count") return RunQuery(s, query, g->json);
        auto n = s.client->Count(query);
        if (!n.ok()) return s.Fail(n.status());
        PrintKeyValues({{"count", IntCell(n.value())}}, g->json);
        return std::nullopt;
      });
    });
  }

  {
    auto* sub = app.add_subcommand(
        "density", "entity counts on an NX x NY grid: MIN_X MIN_Y MAX_X MAX_Y NX NY");
    auto pos = std::make_shared<std::vector<std::string>>();
    auto q = std::make_shared<QueryArgs>();
    sub->add_option("args", *pos, "numbers, see above")->required();
    sub->add_option("--kind", q->kind, "only entities of this kind");
    sub->add_option("--where", q->where, "predicate COLUMN OP VALUE (needs --kind), repeatable");
    sub->callback([=] {
      if (pos->size() != 6) return usage("density needs MIN_X MIN_Y MAX_X MAX_Y NX NY");
      Outcome f;
      std::vector<double> v =
          Numbers({pos->begin(), pos->begin() + 4}, &f, {"min_x", "min_y", "max_x", "max_y"});
      if (f) return usage(f->message);
      auto nx = ParseInt<uint32_t>((*pos)[4]);
      auto ny = ParseInt<uint32_t>((*pos)[5]);
      if (!nx || !ny || *nx == 0 || *ny == 0) return usage("NX and NY must be positive integers");
      DensityQuery dq;
      dq.rect = {v[0], v[1], v[2], v[3]};
      dq.nx = *nx;
      dq.ny = *ny;
      dq.kind = q->kind;
      run([&](Session& s) -> Outcome {
        for (const std::string& w : q->where) {
          Predicate p;
          if (auto e = ParsePredicate(s, q->kind, w, &p)) return e;
          dq.where.push_back(std::move(p));
        }
        auto r = s.client->Density(dq);
        if (!r.ok()) return s.Fail(r.status());
        const DensityResult& d = r.value();
        if (g->json) {
          std::cout << "{\"nx\":" << d.nx << ",\"ny\":" << d.ny << ",\"total\":" << d.total
                    << ",\"counts\":[";
          for (size_t i = 0; i < d.counts.size(); ++i) std::cout << (i ? "," : "") << d.counts[i];
          std::cout << "]}\n";
          return std::nullopt;
        }
        // Rows from the top (max y) down, so the grid reads like a map.
        std::vector<std::string> header = {"iy\\ix"};
        for (uint32_t x = 0; x < d.nx; ++x) header.push_back(std::to_string(x));
        Table t(header);
        for (uint32_t y = d.ny; y-- > 0;) {
          std::vector<Cell> row = {IntCell(y)};
          for (uint32_t x = 0; x < d.nx; ++x)
            row.push_back(IntCell(d.counts[size_t{y} * d.nx + x]));
          t.Add(std::move(row));
        }
        t.PrintText(std::cout);
        std::cout << "(total " << d.total << ")\n";
        return std::nullopt;
      });
    });
  }

  CLI::App* snapshot = app.add_subcommand(
      "snapshot", "ask the server to write a snapshot (admin); `snapshot info` works offline");
  snapshot->callback([=] {
    if (snapshot->get_subcommands().size() > 0) return;  // `snapshot info`: offline
    run([&](Session& s) -> Outcome {
      auto r = s.client->Snapshot();
      if (!r.ok()) return s.Fail(r.status());
      PrintKeyValues({{"lsn", IntCell(r->lsn)},
                      {"entities", IntCell(r->entities)},
                      {"bytes", IntCell(r->bytes)},
                      {"path", TextCell(r->path)}},
                     g->json);
      return std::nullopt;
    });
  });
}

}  // namespace
}  // namespace worlddb::worldctl

int main(int argc, char** argv) {
  using namespace worlddb::worldctl;
  CLI::App app{"worldctl: talk to a WorldDB server (and, offline, to its data directory)"};
  app.require_subcommand(1);
  Global g;
  app.fallthrough();  // global flags may also follow the subcommand
  app.add_option("--host", g.host, "server address")->capture_default_str();
  app.add_option("--port", g.port, "server port")->capture_default_str();
  app.add_option("--token", g.token, "auth token (or WORLDDB_TOKEN)")->envname("WORLDDB_TOKEN");
  app.add_option("--token-file", g.token_file, "read the auth token from this file (first line)");
  app.add_option("--timeout-ms", g.timeout_ms, "connect and per-request timeout")
      ->check(CLI::Range(1, 3600000))
      ->capture_default_str();
  app.add_flag("--json", g.json, "JSON output for scripts");
  int exit_code = kExitOk;
  AddOnlineCommands(app, &g, &exit_code);
  AddOfflineCommands(app, &exit_code);
  AddCapacityCommand(app, &g.json, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "worldctl: " << e.what() << "\n";
    return kExitUsage;
  }
  return exit_code;
}
