// Parser for `--where` filters (grammar in filter.h) and its translation to bound SQL.

#include "reports/filter.h"

#include <algorithm>
#include <cctype>

namespace mixlab::reports {

const std::vector<FilterField>& filter_fields() {
  static const std::vector<FilterField> fields = {
      {"label", "p.label", false, false},
      {"mixer", "instr(',' || p.mixers || ',', ',' || ? || ',') > 0", false, false},
      {"mixers", "p.mixers", false, false},
      {"point_id", "p.point_id", false, false},
      {"sweep", "p.point_id IN (SELECT point_id FROM sweep_points WHERE sweep_name IN ({}))", false, false},
      {"status", "p.status", false, false},
      {"seq_len", "m.seq_len", true, true},
      {"batch", "m.batch", true, true},
      {"device", "m.device", false, true},
      {"dtype", "m.dtype", false, true},
  };
  return fields;
}

namespace {

std::string field_names() {
  std::string text;
  for (const auto& field : filter_fields()) text += (text.empty() ? "" : ", ") + std::string(field.name);
  return text;
}

const FilterField* find_field(const std::string& name) {
  for (const auto& field : filter_fields())
    if (name == field.name) return &field;
  return nullptr;
}

enum class TokenKind { word, string, integer, open, close, comma, equals, not_equals, end };

struct Token {
  TokenKind kind;
  std::string text;
  size_t position;  // 1-based character position, for messages
};

bool is_word_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == ':' || c == '/' || c == '+' ||
         c == '-';
}

[[noreturn]] void fail(size_t position, const std::string& message) {
  throw ReportError("--where: at character " + std::to_string(position) + ": " + message);
}

std::vector<Token> tokenize(const std::string& text) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    const size_t position = i + 1;
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '(' || c == ')' || c == ',' || c == '=') {
      tokens.push_back({c == '(' ? TokenKind::open : c == ')' ? TokenKind::close : c == ',' ? TokenKind::comma : TokenKind::equals,
                        std::string(1, c), position});
      ++i;
    } else if (c == '!' && i + 1 < text.size() && text[i + 1] == '=') {
      tokens.push_back({TokenKind::not_equals, "!=", position});
      i += 2;
    } else if (c == '\'' || c == '"') {
      // A quoted string; the quote character doubled stands for itself.
      std::string value;
      ++i;
      for (;;) {
        if (i >= text.size()) fail(position, "unterminated string");
        if (text[i] == c) {
          if (i + 1 < text.size() && text[i + 1] == c) {
            value += c;
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        value += text[i++];
      }
      tokens.push_back({TokenKind::string, value, position});
    } else if (is_word_char(c)) {
      size_t end = i;
      while (end < text.size() && is_word_char(text[end])) ++end;
      std::string word = text.substr(i, end - i);
      const bool integer = std::all_of(word.begin(), word.end(), [](char d) { return std::isdigit(static_cast<unsigned char>(d)); });
      tokens.push_back({integer ? TokenKind::integer : TokenKind::word, word, position});
      i = end;
    } else {
      fail(position, std::string("unexpected character '") + c +
                         "'; a filter is: field in (v1, v2) | field = v | field != v, joined by 'and'");
    }
  }
  tokens.push_back({TokenKind::end, "", text.size() + 1});
  return tokens;
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Filter parse() {
    Filter filter;
    if (peek().kind == TokenKind::end) return filter;
    filter.clauses.push_back(clause());
    while (peek().kind != TokenKind::end) {
      const Token& token = next();
      if (token.kind != TokenKind::word || lower(token.text) != "and")
        fail(token.position, "expected 'and' or the end of the filter, got '" + token.text + "'" +
                                 (lower(token.text) == "or" ? " ('or' is not supported; use field in (a, b))" : ""));
      filter.clauses.push_back(clause());
    }
    return filter;
  }

 private:
  const Token& peek() const { return tokens_[index_]; }
  const Token& next() { return tokens_[index_ < tokens_.size() - 1 ? index_++ : index_]; }

  FilterClause clause() {
    const Token& name = next();
    if (name.kind != TokenKind::word) fail(name.position, "expected a field name; fields: " + field_names());
    const FilterField* field = find_field(lower(name.text));
    if (!field) fail(name.position, "unknown field '" + name.text + "'; fields: " + field_names());
    FilterClause clause;
    clause.field = field->name;
    const Token& op = next();
    if (op.kind == TokenKind::equals || op.kind == TokenKind::not_equals) {
      clause.negated = op.kind == TokenKind::not_equals;
      clause.values.push_back(value(*field));
    } else if (op.kind == TokenKind::word && lower(op.text) == "in") {
      const Token& open = next();
      if (open.kind != TokenKind::open) fail(open.position, "expected '(' after 'in'");
      clause.values.push_back(value(*field));
      for (;;) {
        const Token& separator = next();
        if (separator.kind == TokenKind::close) break;
        if (separator.kind != TokenKind::comma) fail(separator.position, "expected ',' or ')' in the value list");
        clause.values.push_back(value(*field));
      }
    } else {
      fail(op.position, "expected 'in', '=' or '!=' after field '" + name.text + "'");
    }
    return clause;
  }

  BoundValue value(const FilterField& field) {
    const Token& token = next();
    if (field.integer) {
      if (token.kind != TokenKind::integer)
        fail(token.position, "field '" + std::string(field.name) + "' takes integers, got '" + token.text + "'");
      try {
        return static_cast<int64_t>(std::stoll(token.text));
      } catch (const std::exception&) {
        fail(token.position, "integer out of range: " + token.text);
      }
    }
    if (token.kind == TokenKind::string || token.kind == TokenKind::word || token.kind == TokenKind::integer)
      return token.text;
    fail(token.position, "expected a value for field '" + std::string(field.name) + "'");
  }

  std::vector<Token> tokens_;
  size_t index_ = 0;
};

}  // namespace

Filter parse_filter(const std::string& text) {
  Filter filter = Parser(tokenize(text)).parse();
  filter.text = text;
  return filter;
}

Filter Filter::points_only() const {
  Filter result;
  result.text = text;
  for (const auto& clause : clauses)
    if (!find_field(clause.field)->measurement) result.clauses.push_back(clause);
  return result;
}

std::string Filter::sql(std::vector<BoundValue>& bound, bool measurement_fields) const {
  std::string sql;
  for (const auto& clause : clauses) {
    const FilterField* field = find_field(clause.field);
    if (field->measurement && !measurement_fields)
      throw ReportError("--where: field '" + clause.field + "' applies to measurements only, not to this table");
    std::string expression;
    if (clause.field == "mixer") {
      // One registry name among the comma-separated pattern: any of the listed names matches.
      for (size_t i = 0; i < clause.values.size(); ++i) expression += (i ? " OR " : "") + std::string(field->sql);
      expression = "(" + expression + ")";
    } else {
      std::string placeholders;
      for (size_t i = 0; i < clause.values.size(); ++i) placeholders += i ? ", ?" : "?";
      // A field whose SQL has a "{}" takes the list there (sweep: membership in sweep_points).
      const std::string field_sql = field->sql;
      const auto slot = field_sql.find("{}");
      expression = slot == std::string::npos ? field_sql + " IN (" + placeholders + ")"
                                             : field_sql.substr(0, slot) + placeholders + field_sql.substr(slot + 2);
    }
    sql += clause.negated ? " AND NOT " + expression : " AND " + expression;
    bound.insert(bound.end(), clause.values.begin(), clause.values.end());
  }
  return sql;
}

}  // namespace mixlab::reports
