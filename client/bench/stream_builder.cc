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

// The first {prompt, ground_truth} entry of rec[group][kind] (both optional), e.g.
// locality.Relation_Specificity[0].
const json* FirstEntry(const json& rec, const char* group, const char* kind) {
  auto g = rec.find(group);
  if (g == rec.end() || !g->is_object()) return nullptr;
  auto k = g->find(kind);
  if (k == g->end() || !k->is_array()) return nullptr;
  for (const json& e : *k)
    if (e.is_object() && e.contains("prompt") && e["prompt"].is_string() && !e["prompt"].get<std::string>().empty())
      return &e;
  return nullptr;
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
    if (auto rp = rec.find("rephrase_prompt"); rp != rec.end() && rp->is_string()) {
      r.rephrase = rp->get<std::string>();
    } else if (const json* alias = FirstEntry(rec, "portability", "Subject_Aliasing")) {
      r.rephrase = (*alias)["prompt"].get<std::string>();
    }
    if (const json* loc = FirstEntry(rec, "locality", "Relation_Specificity")) {
      r.loc = (*loc)["prompt"].get<std::string>();
      r.loc_ans = loc->contains("ground_truth") ? FirstString((*loc)["ground_truth"]) : "";
      if (r.loc_ans.empty()) r.loc.clear();  // a locality prompt without an answer cannot be scored
    }
  }
  r.type = ClassifyAnswer(r.question, r.subject, r.target);
  r.relation = RelationKey(r.question, r.subject);
  return r;
}

}  // namespace

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
    }
  } else if (content[first] == '{') {  // JSON lines
    int line = 0;
    size_t pos = 0;
    while (pos < content.size()) {
      size_t end = content.find('\n', pos);
      if (end == absl::string_view::npos) end = content.size();
      absl::string_view text = content.substr(pos, end - pos);
      pos = end + 1;
      ++line;
      if (text.find_first_not_of(" \t\r") == absl::string_view::npos) continue;
      json rec = json::parse(text.begin(), text.end(), nullptr, false);
      if (rec.is_discarded())
        return absl::InvalidArgumentError(absl::StrCat(source, ":", line, ": malformed JSON line"));
      raw.emplace_back(std::move(rec), line);
    }
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
  if (options.offset + static_cast<int64_t>(options.questions) > n)
    return absl::InvalidArgumentError(absl::StrCat("the dataset has ", n, " records; cannot take ", options.questions,
                                                   " questions from record ", options.offset));

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
    const size_t ri = static_cast<size_t>(options.offset + q);
    const DatasetRecord& r = dataset.records[ri];
    std::vector<std::string>& list = answers[q];
    list.push_back(r.target);  // the record's own new target first (what WISE's LKE runs edit)
    std::set<std::string> excluded{NormalizeAnswer(r.target)};
    for (const std::string& t : r.true_answers) excluded.insert(NormalizeAnswer(t));
    // One generator per question, keyed by (seed, record index): a question's answers do not depend on T.
    SplitMix64 rng(SplitMix64(options.seed ^ (0xD1B54A32D192ED03ULL * static_cast<uint64_t>(r.index + 1))).Next());
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

  EditStream stream;
  stream.name = options.name;
  int64_t step = 0;
  for (int round = 0; round < P; ++round) {  // P rounds over the T questions
    for (int q = 0; q < T; ++q) {
      const DatasetRecord& r = dataset.records[static_cast<size_t>(options.offset + q)];
      StreamEdit e;
      e.step = ++step;
      e.qid = std::to_string(r.index);
      e.question = r.question;
      e.answer = answers[q][static_cast<size_t>(round)];
      e.rephrase = r.rephrase;
      e.loc = r.loc;
      e.loc_ans = r.loc_ans;
      e.subject = r.subject;
      e.final = (round == P - 1);
      stream.edits.push_back(std::move(e));
    }
  }
  if (auto s = ValidateStream(stream, stream.name.empty() ? "stream" : stream.name); !s.ok()) return s;
  return stream;
}

}  // namespace moke::bench
