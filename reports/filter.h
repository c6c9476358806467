#pragma once
// `--where` filters: a tiny grammar, parsed and validated, turned into SQL with `?` placeholders
// and a list of bound values.  Nothing the user types is pasted into SQL.
//
//   filter := clause { "and" clause }
//   clause := field "in" "(" value { "," value } ")"  |  field "=" value  |  field "!=" value
//   value  := 'single-quoted' ('' is a quote)  |  "double-quoted"  |  integer  |  bare word [A-Za-z0-9_.:/+-]
//
// Keywords are case-insensitive.  Fields (see filter_fields()): label, mixer (one registry name
// in the pattern), mixers (the whole comma list), point_id, sweep, status (of the point), and,
// for measurement queries only, seq_len, batch, device, dtype.

#include "reports/database.h"

#include <string>
#include <vector>

namespace mixlab::reports {

struct FilterClause {
  std::string field;
  bool negated = false;  // `!=`
  std::vector<BoundValue> values;
};

struct Filter {
  std::vector<FilterClause> clauses;

  bool empty() const { return clauses.empty(); }
  // " AND (...)" for a query whose points table is aliased `p` and measurements `m`; appends
  // the values to bind, in placeholder order.  With measurement_fields false, a clause on a
  // measurement field throws (e.g. a filter on seq_len for training curves).
  std::string sql(std::vector<BoundValue>& bound, bool measurement_fields) const;
  std::string text;  // as typed, for report captions
  // The clauses on point fields only (label, mixer, ...), for queries without measurements.
  Filter points_only() const;
};

struct FilterField {
  const char* name;
  const char* sql;  // expression compared IN (?, ...), or holding the list at "{}", or the form for `mixer`
  bool integer;
  bool measurement;
};
const std::vector<FilterField>& filter_fields();

// Throws ReportError: "--where: at character 12: expected 'in', '=' or '!=' after field 'label'".
Filter parse_filter(const std::string& text);

}  // namespace mixlab::reports
