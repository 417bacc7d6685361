#include "client/bench/stream.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/bench/answer_type.h"
#include "nlohmann/json.hpp"

namespace moke::bench {
namespace {

using json = nlohmann::json;

absl::Status LineError(absl::string_view source, int line, absl::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(source, ":", line, ": ", reason));
}

// Reads a required string field.
absl::Status GetString(const json& obj, const char* key, bool non_empty, std::string* out,
                       absl::string_view source, int line) {
  auto it = obj.find(key);
  if (it == obj.end()) return LineError(source, line, absl::StrCat("missing field \"", key, "\""));
  if (!it->is_string())
    return LineError(source, line, absl::StrCat("field \"", key, "\" must be a string, got ", it->type_name()));
  *out = it->get<std::string>();
  if (non_empty && out->empty()) return LineError(source, line, absl::StrCat("field \"", key, "\" is empty"));
  return absl::OkStatus();
}

// Reads an optional list of non-empty strings (absent = empty).
absl::Status GetStringList(const json& obj, const char* key, std::vector<std::string>* out,
                           absl::string_view source, int line) {
  auto it = obj.find(key);
  if (it == obj.end()) return absl::OkStatus();
  if (!it->is_array())
    return LineError(source, line, absl::StrCat("field \"", key, "\" must be a list of strings, got ", it->type_name()));
  for (size_t i = 0; i < it->size(); ++i) {
    const json& v = (*it)[i];
    if (!v.is_string() || v.get<std::string>().empty())
      return LineError(source, line, absl::StrCat("field \"", key, "\"[", i, "] must be a non-empty string"));
    out->push_back(v.get<std::string>());
  }
  return absl::OkStatus();
}

// Reads an optional list of {"prompt": non-empty string, "answer": non-empty string} (absent = empty).
absl::Status GetPromptAnswers(const json& obj, const char* key, std::vector<PromptAnswer>* out,
                              absl::string_view source, int line) {
  auto it = obj.find(key);
  if (it == obj.end()) return absl::OkStatus();
  if (!it->is_array())
    return LineError(source, line, absl::StrCat("field \"", key, "\" must be a list of {\"prompt\", \"answer\"}, got ",
                                                it->type_name()));
  for (size_t i = 0; i < it->size(); ++i) {
    const json& v = (*it)[i];
    PromptAnswer pa;
    for (auto [name, dst] : {std::pair<const char*, std::string*>{"prompt", &pa.prompt}, {"answer", &pa.answer}}) {
      if (!v.is_object() || !v.contains(name) || !v[name].is_string() || v[name].get<std::string>().empty())
        return LineError(source, line, absl::StrCat("field \"", key, "\"[", i, "] needs a non-empty string \"", name, "\""));
      *dst = v[name].get<std::string>();
    }
    out->push_back(std::move(pa));
  }
  return absl::OkStatus();
}

absl::StatusOr<StreamEdit> ParseLine(absl::string_view text, absl::string_view source, int line) {
  json obj = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (obj.is_discarded()) {
    // Re-parse with exceptions to get the reason.
    try {
      const json reparsed = json::parse(text.begin(), text.end());
      (void)reparsed;
    } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
      std::string what = e.what();
      if (auto p = what.find("parse error"); p != std::string::npos) what = what.substr(p);
      return LineError(source, line, absl::StrCat("malformed JSON: ", what));
    }
    return LineError(source, line, "malformed JSON");
  }
  if (!obj.is_object()) return LineError(source, line, absl::StrCat("expected a JSON object, got ", obj.type_name()));
  StreamEdit e;
  e.line = line;
  auto step = obj.find("step");
  if (step == obj.end()) return LineError(source, line, "missing field \"step\"");
  if (!step->is_number_integer() || step->get<int64_t>() < 1)
    return LineError(source, line, "field \"step\" must be an integer >= 1");
  e.step = step->get<int64_t>();
  auto qid = obj.find("qid");
  if (qid == obj.end()) return LineError(source, line, "missing field \"qid\"");
  if (qid->is_string() && !qid->get<std::string>().empty()) {
    e.qid = qid->get<std::string>();
  } else if (qid->is_number_integer() && qid->get<int64_t>() >= 0) {
    e.qid = std::to_string(qid->get<int64_t>());
  } else {
    return LineError(source, line, "field \"qid\" must be a non-empty string or an integer >= 0");
  }
  if (auto s = GetString(obj, "question", true, &e.question, source, line); !s.ok()) return s;
  if (auto s = GetString(obj, "answer", true, &e.answer, source, line); !s.ok()) return s;
  if (auto s = GetString(obj, "rephrase", false, &e.rephrase, source, line); !s.ok()) return s;
  if (auto s = GetString(obj, "loc", false, &e.loc, source, line); !s.ok()) return s;
  if (auto s = GetString(obj, "loc_ans", false, &e.loc_ans, source, line); !s.ok()) return s;
  if (auto s = GetString(obj, "subject", false, &e.subject, source, line); !s.ok()) return s;
  auto fin = obj.find("final");
  if (fin == obj.end()) return LineError(source, line, "missing field \"final\"");
  if (!fin->is_boolean()) return LineError(source, line, "field \"final\" must be true or false");
  e.final = fin->get<bool>();
  if (auto s = GetStringList(obj, "paraphrases", &e.paraphrases, source, line); !s.ok()) return s;
  if (auto s = GetStringList(obj, "hint_unrelated", &e.hint_unrelated, source, line); !s.ok()) return s;
  if (auto s = GetPromptAnswers(obj, "hard_loc", &e.hard_loc, source, line); !s.ok()) return s;
  if (auto s = GetStringList(obj, "reworded", &e.reworded, source, line); !s.ok()) return s;
  if (auto s = GetPromptAnswers(obj, "rel_spec", &e.rel_spec, source, line); !s.ok()) return s;
  if (auto s = GetPromptAnswers(obj, "aliases", &e.aliases, source, line); !s.ok()) return s;
  return e;
}

int LineOf(const StreamEdit& e, size_t index) { return e.line > 0 ? e.line : static_cast<int>(index + 1); }

// No hint (sent with an edit) may be a prompt that is scored anywhere in the stream: Loc., hard locality
// and Gen. are measured on prompts the server was never told about.
absl::Status CheckHintsAreNotScored(const EditStream& stream, absl::string_view source) {
  struct Use {
    const char* field;
    const StreamEdit* edit;
    int line;
  };
  std::map<std::string, Use> scored;  // NormalizeAnswer(prompt) -> first use
  for (size_t i = 0; i < stream.edits.size(); ++i) {
    const StreamEdit& e = stream.edits[i];
    const auto add = [&](const std::string& prompt, const char* field) {
      if (!prompt.empty()) scored.try_emplace(NormalizeAnswer(prompt), Use{field, &e, LineOf(e, i)});
    };
    add(e.question, "question");
    add(e.rephrase, "rephrase");
    add(e.loc, "loc");
    for (const PromptAnswer& p : e.hard_loc) add(p.prompt, "hard_loc");
    for (const std::string& p : e.reworded) add(p, "reworded");
    for (const PromptAnswer& p : e.rel_spec) add(p.prompt, "rel_spec");
    for (const PromptAnswer& p : e.aliases) add(p.prompt, "aliases");
  }
  for (size_t i = 0; i < stream.edits.size(); ++i) {
    const StreamEdit& e = stream.edits[i];
    for (auto [field, hints] : {std::pair<const char*, const std::vector<std::string>*>{"paraphrases", &e.paraphrases},
                                {"hint_unrelated", &e.hint_unrelated}}) {
      for (const std::string& h : *hints) {
        auto it = scored.find(NormalizeAnswer(h));
        if (it == scored.end()) continue;
        return LineError(source, LineOf(e, i),
                         absl::StrCat("\"", field, "\" prompt \"", h, "\" is also scored (\"", it->second.field,
                                      "\" of qid ", it->second.edit->qid, ", line ", it->second.line,
                                      "): hints and scored prompts must be disjoint"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateStream(const EditStream& stream, absl::string_view source) {
  if (stream.edits.empty()) return absl::InvalidArgumentError(absl::StrCat(source, ": the stream has no edits"));
  struct Seen {
    size_t last = 0;
    bool finished = false;
  };
  std::map<std::string, Seen> seen;
  int64_t prev_step = 0;
  for (size_t i = 0; i < stream.edits.size(); ++i) {
    const StreamEdit& e = stream.edits[i];
    const int line = LineOf(e, i);
    if (e.step <= prev_step)
      return LineError(source, line, absl::StrCat("step ", e.step, " is not greater than the previous step ", prev_step));
    prev_step = e.step;
    if (e.question.empty()) return LineError(source, line, "field \"question\" is empty");
    if (e.answer.empty()) return LineError(source, line, "field \"answer\" is empty");
    if (e.loc.empty() != e.loc_ans.empty())
      return LineError(source, line, "\"loc\" and \"loc_ans\" must both be empty or both be set");
    if (e.paraphrases.size() > kMaxParaphrases)
      return LineError(source, line, absl::StrCat("\"paraphrases\" has ", e.paraphrases.size(),
                                                  " entries; EditFact takes at most ", kMaxParaphrases));
    auto [it, inserted] = seen.try_emplace(e.qid, Seen{i, false});
    if (!inserted) {
      const StreamEdit& first = stream.edits[it->second.last];
      if (it->second.finished)
        return LineError(source, line, absl::StrCat("qid ", e.qid, " appears after its final edit (line ", first.line, ")"));
      const char* differs = nullptr;
      if (first.rephrase != e.rephrase) differs = "rephrase";
      else if (first.loc != e.loc) differs = "loc";
      else if (first.loc_ans != e.loc_ans) differs = "loc_ans";
      else if (first.hard_loc != e.hard_loc) differs = "hard_loc";
      else if (first.reworded != e.reworded) differs = "reworded";
      else if (first.rel_spec != e.rel_spec) differs = "rel_spec";
      else if (first.aliases != e.aliases) differs = "aliases";
      if (differs != nullptr)
        return LineError(source, line, absl::StrCat("qid ", e.qid, ": \"", differs,
                                                    "\" differs from its earlier edit (line ", first.line, ")"));
      it->second.last = i;
    }
    it->second.finished = e.final;
  }
  for (const auto& [qid, s] : seen) {
    if (!s.finished) {
      const StreamEdit& last = stream.edits[s.last];
      return LineError(source, LineOf(last, s.last), absl::StrCat("qid ", qid, ": its last edit is not marked \"final\": true"));
    }
  }
  return CheckHintsAreNotScored(stream, source);
}

absl::Status ForEachLine(absl::string_view content,
                         const std::function<absl::Status(int line, absl::string_view text)>& fn) {
  int line = 0;
  size_t pos = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == absl::string_view::npos) end = content.size();
    absl::string_view text = content.substr(pos, end - pos);
    pos = end + 1;
    ++line;
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    if (text.find_first_not_of(" \t") == absl::string_view::npos) continue;
    if (absl::Status s = fn(line, text); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<EditStream> ParseStream(absl::string_view content, absl::string_view source) {
  EditStream stream;
  if (absl::Status s = ForEachLine(content, [&](int line, absl::string_view text) -> absl::Status {
        auto edit = ParseLine(text, source, line);
        if (!edit.ok()) return edit.status();
        stream.edits.push_back(*std::move(edit));
        return absl::OkStatus();
      });
      !s.ok()) {
    return s;
  }

  if (auto s = ValidateStream(stream, source); !s.ok()) return s;
  return stream;
}

absl::StatusOr<EditStream> ReadStreamFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open stream file ", path));
  std::stringstream buf;
  buf << in.rdbuf();
  auto stream = ParseStream(buf.str(), path);
  if (!stream.ok()) return stream.status();
  stream->name = std::filesystem::path(path).stem().string();
  return stream;
}

std::vector<StreamQuestion> StreamQuestions(const EditStream& stream) {
  std::vector<StreamQuestion> out;
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < stream.edits.size(); ++i) {
    const StreamEdit& e = stream.edits[i];
    auto [it, inserted] = index.try_emplace(e.qid, out.size());
    if (inserted) out.push_back(StreamQuestion{e.qid, i, 0});
    StreamQuestion& q = out[it->second];
    q.final_index = i;
    ++q.num_answers;
  }
  return out;
}

std::string SerializeStreamEdit(const StreamEdit& e) {
  // nlohmann's object keeps keys sorted; build the line by hand to keep the documented order.
  const auto str = [](const std::string& s) { return json(s).dump(-1, ' ', false, json::error_handler_t::replace); };
  const bool numeric = !e.qid.empty() && e.qid.size() < 19 &&
                 e.qid.find_first_not_of("0123456789") == std::string::npos && (e.qid == "0" || e.qid[0] != '0');
  const std::string qid = numeric ? e.qid : str(e.qid);
  std::string out = absl::StrCat("{\"step\":", e.step, ",\"qid\":", qid, ",\"question\":", str(e.question),
                                 ",\"answer\":", str(e.answer), ",\"rephrase\":", str(e.rephrase), ",\"loc\":",
                                 str(e.loc), ",\"loc_ans\":", str(e.loc_ans), ",\"subject\":", str(e.subject));
  const auto strings = [&](const char* key, const std::vector<std::string>& list) {
    if (list.empty()) return;
    absl::StrAppend(&out, ",\"", key, "\":[");
    for (size_t i = 0; i < list.size(); ++i) absl::StrAppend(&out, i ? "," : "", str(list[i]));
    out += "]";
  };
  const auto pairs = [&](const char* key, const std::vector<PromptAnswer>& list) {
    if (list.empty()) return;
    absl::StrAppend(&out, ",\"", key, "\":[");
    for (size_t i = 0; i < list.size(); ++i)
      absl::StrAppend(&out, i ? "," : "", "{\"prompt\":", str(list[i].prompt), ",\"answer\":", str(list[i].answer), "}");
    out += "]";
  };
  strings("paraphrases", e.paraphrases);
  strings("hint_unrelated", e.hint_unrelated);
  pairs("hard_loc", e.hard_loc);
  strings("reworded", e.reworded);
  pairs("rel_spec", e.rel_spec);
  pairs("aliases", e.aliases);
  absl::StrAppend(&out, ",\"final\":", e.final ? "true" : "false", "}");
  return out;
}

absl::Status WriteStreamFile(const EditStream& stream, const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write ", path));
  for (const StreamEdit& e : stream.edits) out << SerializeStreamEdit(e) << '\n';
  out.flush();
  if (!out) return absl::DataLossError(absl::StrCat("write failed: ", path));
  return absl::OkStatus();
}

}  // namespace moke::bench
