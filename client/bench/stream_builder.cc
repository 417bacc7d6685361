#include "client/bench/stream_builder.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/bench/rewording.h"
#include "nlohmann/json.hpp"

namespace moke::bench {
namespace {

using json = nlohmann::json;

int LineOfByte(absl::string_view content, size_t byte) {
  byte = std::min(byte, content.size());
  return 1 + static_cast<int>(std::count(content.begin(), content.begin() + static_cast<std::ptrdiff_t>(byte), '\n'));
}

absl::Status RecordError(absl::string_view source, int64_t index, int line, absl::string_view reason) {
  if (line > 0) return absl::InvalidArgumentError(absl::StrCat(source, ":", line, ": record ", index, ": ", reason));
  return absl::InvalidArgumentError(absl::StrCat(source, ": record ", index, ": ", reason));
}

// The first string in a value that is a string or a (nested) list of strings; "" when there is none.
std::string FirstString(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array())
    for (const json& e : v)
      if (std::string s = FirstString(e); !s.empty()) return s;
  return "";
}

void AllStrings(const json& v, std::vector<std::string>* out) {
  if (v.is_string()) {
    out->push_back(v.get<std::string>());
  } else if (v.is_array()) {
    for (const json& e : v) AllStrings(e, out);
  }
}

// Reads a required string field of a record.
absl::Status RequireString(const json& rec, const char* key, bool non_empty, std::string* out,
                           absl::string_view source, int64_t index, int line) {
  auto it = rec.find(key);
  if (it == rec.end()) return RecordError(source, index, line, absl::StrCat("missing field \"", key, "\""));
  if (!it->is_string())
    return RecordError(source, index, line, absl::StrCat("field \"", key, "\" must be a string, got ", it->type_name()));
  *out = std::string(absl::StripAsciiWhitespace(it->get<std::string>()));
  if (non_empty && out->empty()) return RecordError(source, index, line, absl::StrCat("field \"", key, "\" is empty"));
  return absl::OkStatus();
}

// The {prompt, ground_truth} entries of rec[group][kind] with a non-empty prompt (both optional), e.g.
// locality.Relation_Specificity.
std::vector<const json*> Entries(const json& rec, const char* group, const char* kind) {
  std::vector<const json*> out;
  auto g = rec.find(group);
  if (g == rec.end() || !g->is_object()) return out;
  auto k = g->find(kind);
  if (k == g->end() || !k->is_array()) return out;
  for (const json& e : *k)
    if (e.is_object() && e.contains("prompt") && e["prompt"].is_string() && !e["prompt"].get<std::string>().empty())
      out.push_back(&e);
  return out;
}

// Those entries as (prompt, first alias of ground_truth), leaving out entries without an answer.
std::vector<PromptAnswer> PromptAnswers(const json& rec, const char* group, const char* kind) {
  std::vector<PromptAnswer> out;
  for (const json* e : Entries(rec, group, kind)) {
    PromptAnswer pa{(*e)["prompt"].get<std::string>(), e->contains("ground_truth") ? FirstString((*e)["ground_truth"]) : ""};
    if (!pa.answer.empty()) out.push_back(std::move(pa));
  }
  return out;
}

absl::StatusOr<DatasetFormat> DetectFormat(const json& rec, absl::string_view source, int line) {
  if (!rec.is_object()) return RecordError(source, 0, line, "records must be JSON objects");
  if (rec.contains("src") && rec.contains("alt")) return DatasetFormat::kZsreMend;
  if (rec.contains("prompt") && rec.contains("target_new")) return DatasetFormat::kKnowEdit;
  std::vector<std::string> keys;
  for (auto it = rec.begin(); it != rec.end(); ++it) keys.push_back(it.key());
  return absl::InvalidArgumentError(absl::StrCat(
      source, ": unknown dataset format: the first record has fields [", absl::StrJoin(keys, ", "),
      "]; expected ZsRE MEND (src, alt, answers, rephrase, loc, loc_ans, subject) or KnowEdit/WikiCF "
      "(prompt, target_new, ground_truth, subject, portability, locality)"));
}

absl::StatusOr<DatasetRecord> ParseRecord(const json& rec, DatasetFormat format, int64_t index,
                                          absl::string_view source, int line) {
  if (!rec.is_object()) return RecordError(source, index, line, "records must be JSON objects");
  DatasetRecord r;
  r.index = index;
  if (format == DatasetFormat::kZsreMend) {
    if (auto s = RequireString(rec, "src", true, &r.question, source, index, line); !s.ok()) return s;
    if (auto s = RequireString(rec, "alt", true, &r.target, source, index, line); !s.ok()) return s;
    if (auto s = RequireString(rec, "rephrase", false, &r.rephrase, source, index, line); !s.ok()) return s;
    if (auto s = RequireString(rec, "loc", false, &r.loc, source, index, line); !s.ok()) return s;
    if (auto s = RequireString(rec, "loc_ans", false, &r.loc_ans, source, index, line); !s.ok()) return s;
    if (auto s = RequireString(rec, "subject", false, &r.subject, source, index, line); !s.ok()) return s;
    auto ans = rec.find("answers");
    if (ans == rec.end()) return RecordError(source, index, line, "missing field \"answers\"");
    if (!ans->is_array() && !ans->is_string())
      return RecordError(source, index, line, "field \"answers\" must be a list of strings");
    AllStrings(*ans, &r.true_answers);
  } else {
    if (auto s = RequireString(rec, "prompt", true, &r.question, source, index, line); !s.ok()) return s;
    if (auto s = RequireString(rec, "target_new", true, &r.target, source, index, line); !s.ok()) return s;
    if (auto s = RequireString(rec, "subject", false, &r.subject, source, index, line); !s.ok()) return s;
    auto gt = rec.find("ground_truth");
    if (gt == rec.end()) return RecordError(source, index, line, "missing field \"ground_truth\"");
    AllStrings(*gt, &r.true_answers);
    // Generality: KnowEdit ZsRE has rephrase_prompt; WikiCF uses portability.Subject_Aliasing.
    const std::vector<const json*> aliases = Entries(rec, "portability", "Subject_Aliasing");
    if (auto rp = rec.find("rephrase_prompt"); rp != rec.end() && rp->is_string()) {
      r.rephrase = rp->get<std::string>();
    } else if (!aliases.empty()) {
      r.rephrase = (*aliases[0])["prompt"].get<std::string>();
    }
    if (const std::vector<const json*> locs = Entries(rec, "locality", "Relation_Specificity"); !locs.empty()) {
      r.loc = (*locs[0])["prompt"].get<std::string>();
      r.loc_ans = locs[0]->contains("ground_truth") ? FirstString((*locs[0])["ground_truth"]) : "";
      if (r.loc_ans.empty()) r.loc.clear();  // a locality prompt without an answer cannot be scored
    }
    r.rel_spec = PromptAnswers(rec, "locality", "Relation_Specificity");
    r.aliases = PromptAnswers(rec, "portability", "Subject_Aliasing");
    if (auto gp = rec.find("generate_prompt"); gp != rec.end() && gp->is_array()) {
      std::vector<std::string> items;
      AllStrings(*gp, &items);
      r.rewordings = UsableParaphrases(items, r.question, r.subject);
      r.rewordings_from_dataset = !r.rewordings.empty();
    }
  }
  if (r.rewordings.empty()) r.rewordings = RewordQuestion(r.question, r.subject);
  r.type = ClassifyAnswer(r.question, r.subject, r.target);
  r.relation = RelationKey(r.question, r.subject);
  return r;
}

// A question's own generator for one purpose (`salt`); salt 0 is the one the alternative answers use.
SplitMix64 QuestionRng(uint64_t seed, int64_t index, uint64_t salt) {
  return SplitMix64(SplitMix64((seed ^ (0xD1B54A32D192ED03ULL * static_cast<uint64_t>(index + 1))) + salt).Next());
}
constexpr uint64_t kRewordSalt = 1, kHardLocSalt = 2, kHintSalt = 3;

// Up to n items of `pool`, drawn uniformly without replacement, in draw order.
template <typename T>
std::vector<T> Draw(std::vector<T> pool, size_t n, SplitMix64& rng) {
  std::vector<T> out;
  while (out.size() < n && !pool.empty()) {
    const size_t k = rng.Uniform(pool.size());
    out.push_back(std::move(pool[k]));
    pool[k] = std::move(pool.back());
    pool.pop_back();
  }
  return out;
}

// The scope checks and hints of one question (stream_builder.h).
struct QuestionChecks {
  std::string loc, loc_ans;  // the record's locality prompt, unless it asks an edited fact (then another, or none)
  std::vector<PromptAnswer> hard_loc, rel_spec, aliases;
  std::vector<std::string> reworded, paraphrases, hint_unrelated;
  std::vector<std::string> spare;  // the record's own paraphrases not drawn as rewordings (hint candidates)
};

// Fills the checks of the facts whose first records are `picked` (GroupFacts); `same_fact[q]` are the
// records that restate picked[q]'s fact in other words.
std::vector<QuestionChecks> ScopeChecks(const Dataset& dataset, const std::vector<size_t>& picked,
                                        const std::vector<std::vector<size_t>>& same_fact, uint64_t seed) {
  const auto& recs = dataset.records;
  const size_t T = picked.size();
  std::set<size_t> used(picked.begin(), picked.end());
  for (const auto& list : same_fact) used.insert(list.begin(), list.end());
  const auto in_stream = [&](size_t i) { return used.count(i) > 0; };
  std::vector<QuestionChecks> checks(T);
  std::set<std::string> edited_subjects;  // normalized
  std::set<std::string> edited_prompts;   // prompts that must get an edited answer: question, rephrase, rewordings, aliases
  for (size_t q = 0; q < T; ++q) {
    const DatasetRecord& r = recs[picked[q]];
    QuestionChecks& c = checks[q];
    if (!r.subject.empty()) edited_subjects.insert(NormalizeAnswer(r.subject));
    std::vector<std::string> rewordings;
    for (const std::string& w : r.rewordings)
      if (NormalizeAnswer(w) != NormalizeAnswer(r.question) && NormalizeAnswer(w) != NormalizeAnswer(r.rephrase))
        rewordings.push_back(w);
    if (r.rewordings_from_dataset) {  // the record's own list: a seeded part is scored, the rest may be hints
      SplitMix64 rng = QuestionRng(seed, r.index, kRewordSalt);
      const size_t n = rewordings.size();
      rewordings = Draw(std::move(rewordings), n, rng);
      for (size_t k = kRewordedPerQuestion; k < rewordings.size(); ++k) c.spare.push_back(rewordings[k]);
    }
    if (rewordings.size() > kRewordedPerQuestion) rewordings.resize(kRewordedPerQuestion);
    // The same fact asked by other records in other words (ZsRE lists a fact once per wording): not
    // edited on their own, scored as rewordings of this one.
    std::set<std::string> have{NormalizeAnswer(r.question), NormalizeAnswer(r.rephrase)};
    for (const std::string& w : rewordings) have.insert(NormalizeAnswer(w));
    for (size_t i : same_fact[q])
      for (const std::string* w : {&recs[i].question, &recs[i].rephrase})
        if (!w->empty() && have.insert(NormalizeAnswer(*w)).second) rewordings.push_back(*w);
    c.reworded = std::move(rewordings);
    c.aliases.assign(r.aliases.begin(), r.aliases.begin() + std::min(r.aliases.size(), kAliasesPerQuestion));
    for (const std::string* p : {&r.question, &r.rephrase}) edited_prompts.insert(NormalizeAnswer(*p));
    for (const std::string& p : c.reworded) edited_prompts.insert(NormalizeAnswer(p));
    for (const PromptAnswer& p : c.aliases) edited_prompts.insert(NormalizeAnswer(p.prompt));
  }
  // Prompts that must be left alone never ask for an edited fact (another edited record's question).
  const auto left_alone_ok = [&](const std::string& prompt) { return !edited_prompts.count(NormalizeAnswer(prompt)); };
  for (size_t q = 0; q < T; ++q) {
    const DatasetRecord& r = recs[picked[q]];
    for (const PromptAnswer& p : r.rel_spec) {
      if (checks[q].rel_spec.size() >= kRelSpecPerQuestion) break;
      if (left_alone_ok(p.prompt)) checks[q].rel_spec.push_back(p);
    }
    // Loc. too: WikiCF's locality prompt (a Relation_Specificity one) may be another edited record's
    // question; then the first of the record's own that is not, else none.
    if (left_alone_ok(r.loc)) {
      checks[q].loc = r.loc;
      checks[q].loc_ans = r.loc_ans;
    } else if (!checks[q].rel_spec.empty() && !checks[q].rel_spec[0].answer.empty()) {
      checks[q].loc = checks[q].rel_spec[0].prompt;
      checks[q].loc_ans = checks[q].rel_spec[0].answer;
    }
  }

  // hard_loc: same relation key, another record never edited here, whose subject is not an edited subject.
  std::map<std::string, std::vector<size_t>> by_relation;
  for (size_t i = 0; i < recs.size(); ++i)
    if (!recs[i].relation.empty()) by_relation[recs[i].relation].push_back(i);
  std::set<size_t> hard_loc_sources;
  for (size_t q = 0; q < T; ++q) {
    const DatasetRecord& r = recs[picked[q]];
    auto it = by_relation.find(r.relation);
    if (r.relation.empty() || it == by_relation.end()) continue;
    std::vector<size_t> pool;
    std::set<std::string> seen;
    for (size_t i : it->second) {
      const DatasetRecord& o = recs[i];
      if (in_stream(i) || o.subject.empty() || edited_subjects.count(NormalizeAnswer(o.subject))) continue;
      if (o.true_answers.empty() || o.true_answers[0].empty() || !left_alone_ok(o.question)) continue;
      if (seen.insert(NormalizeAnswer(o.question)).second) pool.push_back(i);
    }
    SplitMix64 rng = QuestionRng(seed, r.index, kHardLocSalt);
    for (size_t i : Draw(std::move(pool), kHardLocPerQuestion, rng)) {
      checks[q].hard_loc.push_back(PromptAnswer{recs[i].question, recs[i].true_answers[0]});
      hard_loc_sources.insert(i);
    }
  }

  // Every prompt scored anywhere in the stream; hints must avoid all of them.
  std::set<std::string> scored;
  for (size_t q = 0; q < T; ++q) {
    const DatasetRecord& r = recs[picked[q]];
    const QuestionChecks& c = checks[q];
    for (const std::string* p : {&r.question, &r.rephrase, &r.loc})
      if (!p->empty()) scored.insert(NormalizeAnswer(*p));
    for (const auto* list : {&c.hard_loc, &c.rel_spec, &c.aliases})
      for (const PromptAnswer& p : *list) scored.insert(NormalizeAnswer(p.prompt));
    for (const std::string& p : c.reworded) scored.insert(NormalizeAnswer(p));
  }
  for (QuestionChecks& c : checks)
    for (const std::string& p : c.spare)
      if (c.paraphrases.size() < kParaphrasesPerQuestion && !scored.count(NormalizeAnswer(p))) c.paraphrases.push_back(p);

  // hint_unrelated: the `loc` of records that are neither edited nor scored, about subjects not edited.
  std::vector<std::string> hint_pool;
  {
    std::set<std::string> seen;
    for (size_t i = 0; i < recs.size(); ++i) {
      const DatasetRecord& o = recs[i];
      if (in_stream(i) || hard_loc_sources.count(i) || o.loc.empty()) continue;
      if (!o.subject.empty() && edited_subjects.count(NormalizeAnswer(o.subject))) continue;
      const std::string norm = NormalizeAnswer(o.loc);
      if (!scored.count(norm) && seen.insert(norm).second) hint_pool.push_back(o.loc);
    }
  }
  for (size_t q = 0; q < T; ++q) {
    SplitMix64 rng = QuestionRng(seed, recs[picked[q]].index, kHintSalt);
    checks[q].hint_unrelated = Draw(hint_pool, kHintsPerQuestion, rng);
  }
  return checks;
}

// The fact a record asks: its subject and each of its true answers (normalised). Two records about the
// same subject with a true answer in common ask the same fact, however worded ("Which corporation
// created USS Leedstown (APA-56)?" / "What company made USS Leedstown (APA-56)?", both "Bethlehem
// Steel"). A record without a subject or true answers is its own fact.
std::vector<std::string> FactKeys(const DatasetRecord& r) {
  std::vector<std::string> keys;
  const std::string subject = NormalizeAnswer(r.subject);
  if (subject.empty()) return keys;
  for (const std::string& a : r.true_answers)
    if (std::string n = NormalizeAnswer(a); !n.empty()) keys.push_back(absl::StrCat(subject, "\x1f", n));
  return keys;
}

// The facts of the records from `offset` (FactKeys): each fact's first record, and the later records of
// the whole file that restate it. The scan takes records until it has `limit` facts (by_records false) or
// `limit` records (by_records true); `fact_of` gets the fact of each record it took.
struct FactGroups {
  std::vector<size_t> firsts;
  std::vector<std::vector<size_t>> same_fact;
  std::vector<size_t> fact_of;  // for records offset, offset + 1, ... up to where the scan stopped
};

FactGroups GroupFacts(const Dataset& dataset, int64_t offset, int limit, bool by_records) {
  FactGroups g;
  std::map<std::string, size_t> owner;  // fact key -> position in `firsts`
  const auto taking = [&](size_t i) {
    return by_records ? i < static_cast<size_t>(offset + limit) : g.firsts.size() < static_cast<size_t>(limit);
  };
  size_t i = static_cast<size_t>(offset);
  for (; i < dataset.records.size() && taking(i); ++i) {
    const std::vector<std::string> keys = FactKeys(dataset.records[i]);
    int64_t q = -1;
    for (const std::string& k : keys)
      if (auto it = owner.find(k); it != owner.end()) q = static_cast<int64_t>(it->second);
    if (q >= 0) {
      g.same_fact[static_cast<size_t>(q)].push_back(i);
      g.fact_of.push_back(static_cast<size_t>(q));
      continue;
    }
    for (const std::string& k : keys) owner.emplace(k, g.firsts.size());
    g.fact_of.push_back(g.firsts.size());
    g.firsts.push_back(i);
    g.same_fact.emplace_back();
  }
  // Records after the scan that restate a fact it found are that fact's rewordings too.
  for (; i < dataset.records.size(); ++i) {
    for (const std::string& k : FactKeys(dataset.records[i])) {
      if (auto it = owner.find(k); it != owner.end()) {
        g.same_fact[it->second].push_back(i);
        break;
      }
    }
  }
  return g;
}

// A fact edited in several wordings is evaluated on its last edit's question (Rel.): that one leaves the
// prompts that must get the final answer (`reworded`, `aliases`, and `rephrase`, which would only repeat
// Rel.), and its earlier edited wordings that are not among the `reworded` prompts are put first there
// (they must get the final answer too).
void ScoreEarlierWordings(EditStream* stream) {
  std::map<std::string, std::vector<const std::string*>> wordings;  // qid -> its edits' questions, in order
  std::map<std::string, const StreamEdit*> last;
  for (const StreamEdit& e : stream->edits) {
    wordings[e.qid].push_back(&e.question);
    last[e.qid] = &e;
  }
  std::map<std::string, StreamEdit> scored;  // qid -> the fields every edit of it gets
  for (const auto& [qid, w] : wordings) {
    const StreamEdit& fin = *last[qid];
    const std::string final_question = NormalizeAnswer(fin.question);
    const auto is_final = [&](const std::string& p) { return NormalizeAnswer(p) == final_question; };
    if (std::all_of(w.begin(), w.end(), [&](const std::string* q) { return is_final(*q); })) continue;
    StreamEdit s;
    for (const std::string* q : w) {
      const auto same = [&](const std::string& p) { return NormalizeAnswer(p) == NormalizeAnswer(*q); };
      if (!is_final(*q) && std::none_of(s.reworded.begin(), s.reworded.end(), same) &&
          std::none_of(fin.reworded.begin(), fin.reworded.end(), same))
        s.reworded.push_back(*q);
    }
    for (const std::string& p : fin.reworded)
      if (!is_final(p)) s.reworded.push_back(p);
    for (const PromptAnswer& a : fin.aliases)
      if (!is_final(a.prompt)) s.aliases.push_back(a);
    s.rephrase = is_final(fin.rephrase) ? "" : fin.rephrase;
    scored.emplace(qid, std::move(s));
  }
  for (StreamEdit& e : stream->edits) {
    auto it = scored.find(e.qid);
    if (it == scored.end()) continue;
    e.reworded = it->second.reworded;
    e.aliases = it->second.aliases;
    e.rephrase = it->second.rephrase;
  }
}

}  // namespace

absl::StatusOr<std::vector<size_t>> SelectFacts(const Dataset& dataset, int64_t offset, int questions,
                                                std::vector<std::vector<size_t>>* same_fact) {
  FactGroups g = GroupFacts(dataset, offset, questions, /*by_records=*/false);
  if (static_cast<int>(g.firsts.size()) < questions)
    return absl::InvalidArgumentError(absl::StrCat("the dataset has ", g.firsts.size(), " distinct facts from record ",
                                                   offset, "; cannot take ", questions,
                                                   " questions (without --one-per-fact every record is edited)"));
  *same_fact = std::move(g.same_fact);
  return g.firsts;
}

absl::StatusOr<DatasetFormat> ParseDatasetFormat(absl::string_view name) {
  if (name == "auto") return DatasetFormat::kAuto;
  if (name == "zsre" || name == "zsre-mend") return DatasetFormat::kZsreMend;
  if (name == "wikicf" || name == "knowedit") return DatasetFormat::kKnowEdit;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dataset format \"", name, "\" (expected auto, zsre, wikicf or knowedit)"));
}

absl::string_view DatasetFormatName(DatasetFormat format) {
  switch (format) {
    case DatasetFormat::kAuto: return "auto";
    case DatasetFormat::kZsreMend: return "zsre";
    case DatasetFormat::kKnowEdit: return "knowedit";
  }
  return "auto";
}

absl::StatusOr<Dataset> ParseDataset(absl::string_view content, absl::string_view source, DatasetFormat format) {
  const size_t first = content.find_first_not_of(" \t\r\n");
  if (first == absl::string_view::npos) return absl::InvalidArgumentError(absl::StrCat(source, ": the dataset is empty"));
  // (record, line or 0)
  std::vector<std::pair<json, int>> raw;
  if (content[first] == '[') {
    try {
      json all = json::parse(content.begin(), content.end());
      for (json& rec : all) raw.emplace_back(std::move(rec), 0);
    } catch (const json::parse_error& e) {
      std::string what = e.what();
      if (auto p = what.find("parse error"); p != std::string::npos) what = what.substr(p);
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":", LineOfByte(content, e.byte > 0 ? e.byte - 1 : 0), ": malformed JSON: ", what));
    } catch (const json::exception& e) {  // e.g. out_of_range: a number too large for a double ("1e999")
      return absl::InvalidArgumentError(absl::StrCat(source, ": malformed JSON: ", e.what()));
    }
  } else if (content[first] == '{') {  // JSON lines
    absl::Status s = ForEachLine(content, [&](int line, absl::string_view text) -> absl::Status {
      json rec = json::parse(text.begin(), text.end(), nullptr, false);
      if (rec.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(source, ":", line, ": malformed JSON line"));
      raw.emplace_back(std::move(rec), line);
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", LineOfByte(content, first), ": unknown dataset format: expected a JSON array of "
                     "records or JSON lines"));
  }
  if (raw.empty()) return absl::InvalidArgumentError(absl::StrCat(source, ": the dataset has no records"));
  Dataset ds;
  ds.format = format;
  if (format == DatasetFormat::kAuto) {
    auto detected = DetectFormat(raw[0].first, source, raw[0].second);
    if (!detected.ok()) return detected.status();
    ds.format = *detected;
  }
  ds.records.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    auto rec = ParseRecord(raw[i].first, ds.format, static_cast<int64_t>(i), source, raw[i].second);
    if (!rec.ok()) return rec.status();
    ds.records.push_back(*std::move(rec));
  }
  return ds;
}

absl::StatusOr<Dataset> LoadDataset(const std::string& path, DatasetFormat format) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open dataset ", path));
  std::stringstream buf;
  buf << in.rdbuf();
  return ParseDataset(buf.str(), path, format);
}

uint64_t SplitMix64::Next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::Uniform(uint64_t n) {
  // Rejection sampling: discard the top partial block so every residue is equally likely.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = Next();
  } while (x >= limit);
  return x % n;
}

absl::StatusOr<EditStream> BuildStream(const Dataset& dataset, const BuildOptions& options) {
  const int64_t n = static_cast<int64_t>(dataset.records.size());
  if (options.questions < 1) return absl::InvalidArgumentError("--questions (T) must be >= 1");
  if (options.answers < 1) return absl::InvalidArgumentError("--answers (P) must be >= 1");
  if (options.offset < 0) return absl::InvalidArgumentError("--offset must be >= 0");
  if (options.reword_reedits && options.answers < 2)
    return absl::InvalidArgumentError("--reword-reedits needs --answers (P) >= 2: it rewords the re-edits");
  if (options.offset + static_cast<int64_t>(options.questions) > n)
    return absl::InvalidArgumentError(absl::StrCat("the dataset has ", n, " records; cannot take ", options.questions,
                                                   " questions from record ", options.offset));
  // The records edited, each with its fact. With one_per_fact, the first T facts, one record each; else every
  // record of the range, a record that restates an earlier one's fact being that fact's edit in its own words.
  FactGroups facts;
  std::vector<size_t> edited, fact_of_edited;
  if (options.one_per_fact) {
    absl::StatusOr<std::vector<size_t>> picked = SelectFacts(dataset, options.offset, options.questions, &facts.same_fact);
    if (!picked.ok()) return picked.status();
    facts.firsts = edited = *std::move(picked);
    for (size_t f = 0; f < facts.firsts.size(); ++f) fact_of_edited.push_back(f);
  } else {
    facts = GroupFacts(dataset, options.offset, options.questions, /*by_records=*/true);
    for (int k = 0; k < options.questions; ++k) edited.push_back(static_cast<size_t>(options.offset + k));
    fact_of_edited = facts.fact_of;
  }

  // Candidate pools of other records' targets, deduplicated by normalized text, in dataset order.
  std::map<std::pair<AnswerType, std::string>, std::vector<size_t>> by_relation;
  std::map<AnswerType, std::vector<size_t>> by_type;
  std::vector<size_t> everything;
  {
    std::set<std::pair<std::pair<AnswerType, std::string>, std::string>> seen_rel;
    std::set<std::pair<AnswerType, std::string>> seen_type;
    std::set<std::string> seen_all;
    for (size_t i = 0; i < dataset.records.size(); ++i) {
      const DatasetRecord& r = dataset.records[i];
      const std::string norm = NormalizeAnswer(r.target);
      if (norm.empty()) continue;
      if (!r.relation.empty() && seen_rel.insert({{r.type, r.relation}, norm}).second)
        by_relation[{r.type, r.relation}].push_back(i);
      if (seen_type.insert({r.type, norm}).second) by_type[r.type].push_back(i);
      if (seen_all.insert(norm).second) everything.push_back(i);
    }
  }

  const int T = options.questions;
  const int P = options.answers;
  std::vector<std::vector<std::string>> answers(T);
  for (int q = 0; q < T; ++q) {
    const size_t ri = edited[static_cast<size_t>(q)];
    const DatasetRecord& r = dataset.records[ri];
    std::vector<std::string>& list = answers[q];
    list.push_back(r.target);  // the record's own new target first (what WISE's LKE runs edit)
    std::set<std::string> excluded{NormalizeAnswer(r.target)};
    for (const std::string& t : r.true_answers) excluded.insert(NormalizeAnswer(t));
    // One generator per question, keyed by (seed, record index): a question's answers do not depend on T.
    SplitMix64 rng = QuestionRng(options.seed, r.index, 0);
    const std::vector<size_t>* pools[3] = {nullptr, nullptr, &everything};
    if (auto it = by_relation.find({r.type, r.relation}); !r.relation.empty() && it != by_relation.end())
      pools[0] = &it->second;
    if (auto it = by_type.find(r.type); it != by_type.end()) pools[1] = &it->second;
    for (const std::vector<size_t>* pool : pools) {
      if (static_cast<int>(list.size()) >= P) break;
      if (pool == nullptr) continue;
      std::vector<size_t> candidates;
      for (size_t c : *pool)
        if (c != ri && !excluded.count(NormalizeAnswer(dataset.records[c].target))) candidates.push_back(c);
      while (static_cast<int>(list.size()) < P && !candidates.empty()) {
        const size_t k = rng.Uniform(candidates.size());
        const DatasetRecord& pick = dataset.records[candidates[k]];
        candidates[k] = candidates.back();
        candidates.pop_back();
        if (!excluded.insert(NormalizeAnswer(pick.target)).second) continue;  // same text seen via another pool
        list.push_back(pick.target);
      }
    }
    if (static_cast<int>(list.size()) < P)
      return absl::FailedPreconditionError(absl::StrCat("record ", r.index, ": only ", list.size(),
                                                        " distinct answers are available, --answers asks for ", P));
  }

  std::vector<QuestionChecks> checks = ScopeChecks(dataset, facts.firsts, facts.same_fact, options.seed);
  // A fact's last edit is the last of the last round that asks it.
  std::vector<size_t> last_of_fact(facts.firsts.size());
  for (size_t q = 0; q < edited.size(); ++q) last_of_fact[fact_of_edited[q]] = edited[q];
  EditStream stream;
  stream.name = options.name;
  int64_t step = 0;
  for (int round = 0; round < P; ++round) {  // P rounds over the T edited records
    for (int q = 0; q < T; ++q) {
      const DatasetRecord& r = dataset.records[edited[static_cast<size_t>(q)]];
      const size_t f = fact_of_edited[static_cast<size_t>(q)];
      const DatasetRecord& first = dataset.records[facts.firsts[f]];
      StreamEdit e;
      e.step = ++step;
      e.qid = std::to_string(first.index);
      e.question = r.question;
      e.subject = r.subject;
      if (options.reword_reedits && round % 2 == 1 && !r.rephrase.empty()) {
        e.question = r.rephrase;
        if (e.question.find(e.subject) == std::string::npos) e.subject.clear();  // the server finds one
      }
      e.answer = answers[q][static_cast<size_t>(round)];
      e.rephrase = first.rephrase;
      const QuestionChecks& c = checks[f];
      e.loc = c.loc;
      e.loc_ans = c.loc_ans;
      e.final = (round == P - 1 && edited[static_cast<size_t>(q)] == last_of_fact[f]);
      e.paraphrases = c.paraphrases;
      e.hint_unrelated = c.hint_unrelated;
      e.hard_loc = c.hard_loc;
      e.reworded = c.reworded;
      e.rel_spec = c.rel_spec;
      e.aliases = c.aliases;
      stream.edits.push_back(std::move(e));
    }
  }
  ScoreEarlierWordings(&stream);
  if (auto s = ValidateStream(stream, stream.name.empty() ? "stream" : stream.name); !s.ok()) return s;
  return stream;
}

}  // namespace moke::bench
