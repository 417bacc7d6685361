// Builds LKE and sLKE edit streams from the shared ZsRE and WikiCF files (see docs/streams.md).
//
// LKE: the first T records in order, one edit each (P = 1), as the paper's runs and the Python reference
// take them. With one_per_fact, the first T records that ask distinct facts: a record that asks the same
// fact as an earlier one (the same subject and a true answer in common: ZsRE lists a fact once per
// wording, each with its own new target) is not edited, since a service must answer every wording of a
// fact with its latest edit and two wordings edited to two answers cannot both be right; its question and
// rephrase are scored as `reworded` prompts of the fact's first record (SelectFacts). ZsRE MEND has 743
// distinct facts in 1,037 records. sLKE: the same T questions, P answers each:
// the record's own new target first, then P - 1 alternatives drawn (seeded) from other records' targets
// of the same answer type (answer_type.h), preferring the same relation (RelationKey), never one of the
// record's true answers, never a duplicate. Edits are ordered in P rounds over the T questions, so a
// question's answers are spread through the stream; the last round carries final = true.
// With reword_reedits, odd rounds edit the record's rephrase instead of its question (the subject sent only
// when the rephrase contains it): re-edits worded otherwise. A fact edited in several wordings (these, or
// records restating it) is scored on its last edit's question; its other edited wordings join `reworded`.
//
// Each question also gets the scope checks of issue 14 (docs/streams.md, "Scope checks"), all seeded and
// keyed by record index:
//   hard_loc        up to kHardLocPerQuestion questions of other records with the same relation key, from
//                   records outside the edited set whose subject is no edited record's subject;
//   reworded        up to kRewordedPerQuestion form-changing rewordings (the record's own paraphrase list,
//                   e.g. WikiCF generate_prompt, else the rules of rewording.h), then the question and
//                   rephrase of every record that restates the fact;
//   paraphrases     up to kParaphrasesPerQuestion more items of the record's own paraphrase list (hints;
//                   never from the rules, never one that is scored);
//   rel_spec        up to kRelSpecPerQuestion locality.Relation_Specificity entries (KnowEdit records);
//   aliases         up to kAliasesPerQuestion portability.Subject_Aliasing entries (KnowEdit records);
//   hint_unrelated  kHintsPerQuestion `loc` prompt of a record that is neither edited nor a hard_loc source,
//                   whose subject is not edited and which is not scored anywhere in the stream.
// Pure functions (apart from reading the dataset file); thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/bench/answer_type.h"
#include "client/bench/stream.h"

namespace moke::bench {

enum class DatasetFormat {
  kAuto,      // decided from the first record's fields
  kZsreMend,  // zsre_mend_eval*.json: src, alt, answers, rephrase, loc, loc_ans, subject
  kKnowEdit,  // KnowEdit (WikiCF test_cf/train_cf, ZsRE-test-all): prompt, target_new, ground_truth, ...
};

absl::StatusOr<DatasetFormat> ParseDatasetFormat(absl::string_view name);  // "auto", "zsre", "wikicf"/"knowedit"
absl::string_view DatasetFormatName(DatasetFormat format);

inline constexpr size_t kHardLocPerQuestion = 2;
inline constexpr size_t kRewordedPerQuestion = 3;
inline constexpr size_t kParaphrasesPerQuestion = 2;
inline constexpr size_t kRelSpecPerQuestion = 4;
inline constexpr size_t kAliasesPerQuestion = 4;
inline constexpr size_t kHintsPerQuestion = 1;

// One dataset record, reduced to what a stream needs.
struct DatasetRecord {
  int64_t index = 0;                     // position in the file (0-based); becomes the stream's qid
  std::string question;                  // src / prompt
  std::string target;                    // the record's new target: alt / target_new
  std::vector<std::string> true_answers; // answers / ground_truth (all aliases)
  std::string rephrase;                  // rephrase / rephrase_prompt / Subject_Aliasing[0].prompt / ""
  std::string loc;                       // loc / locality.Relation_Specificity[0].prompt / ""
  std::string loc_ans;                   // its answer (first alias)
  std::string subject;
  AnswerType type = AnswerType::kOther;  // of `target`, given `question`
  std::string relation;                  // RelationKey(question, subject)
  std::vector<PromptAnswer> rel_spec;    // locality.Relation_Specificity (prompt, first alias), KnowEdit only
  std::vector<PromptAnswer> aliases;     // portability.Subject_Aliasing (prompt, first alias), KnowEdit only
  std::vector<std::string> rewordings;   // UsableParaphrases(generate_prompt) when any, else RewordQuestion
  bool rewordings_from_dataset = false;  // true: `rewordings` came from the record's own list
};

struct Dataset {
  DatasetFormat format = DatasetFormat::kAuto;
  std::vector<DatasetRecord> records;
};

// Parses a dataset (a JSON array, or JSON lines) held in memory. Errors name the record (0-based) and,
// for malformed JSON, the line.
absl::StatusOr<Dataset> ParseDataset(absl::string_view content, absl::string_view source, DatasetFormat format);
absl::StatusOr<Dataset> LoadDataset(const std::string& path, DatasetFormat format);

struct BuildOptions {
  int questions = 10;    // T
  int answers = 1;       // P (1 = LKE)
  uint64_t seed = 0;
  int offset = 0;        // first record used
  bool one_per_fact = false;  // true: a record that restates an earlier record's fact is not edited (above)
  bool reword_reedits = false;  // true: odd rounds edit the record's rephrase instead of its question (above)
  std::string name;      // the stream's name
};

absl::StatusOr<EditStream> BuildStream(const Dataset& dataset, const BuildOptions& options);

// The first `questions` records from `offset` that ask distinct facts (indexes into dataset.records), and
// for each, the records of the whole file that restate its fact (`same_fact`, in file order).
absl::StatusOr<std::vector<size_t>> SelectFacts(const Dataset& dataset, int64_t offset, int questions,
                                                std::vector<std::vector<size_t>>* same_fact);

// Deterministic, platform-independent generator (SplitMix64) so that a seed gives the same stream
// everywhere (std:: distributions are implementation-defined).
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  // Uniform in [0, n), n > 0, without modulo bias.
  uint64_t Uniform(uint64_t n);

 private:
  uint64_t state_;
};

}  // namespace moke::bench
