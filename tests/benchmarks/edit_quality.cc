// In-process editing-quality run on ZsRE (no server): applies an LKE or sLKE stream to one Editor and
// reports Rel./Gen./Loc. and routing accuracy by EasyEdit's protocol. Used for ablations and tuning;
// the service's own figures come from moke-bench against moke-server.
//
//   edit_quality --data ../shared/data/zsre/zsre_mend_eval_portability_gpt4.json --t 50 --p 1 [--set key=value ...]
#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/common/process_tuning.h"
#include "core/editor/editor.h"
#include "nlohmann/json.hpp"

namespace {

struct Rec {
  std::string q, a, reph, loc, loc_ans, subject;
};

}  // namespace

int main(int argc, char** argv) {
  std::fprintf(stderr, "process: %s\n", moke::ConfigureProcess(argv).c_str());  // as moke-server does
  std::string data = MOKE_SHARED_DIR "/data/zsre/zsre_mend_eval_portability_gpt4.json";
  int T = 50, P = 1, seed = 1;
  moke::EditorOptions opt;
  opt.model_dir = MOKE_DEFAULT_MODEL_DIR;
  nlohmann::json overrides = nlohmann::json::object();
  bool verbose = false;
  bool give_loc = true;
  bool give_subject = true;  // send the record's subject (EditRequest.subject), as moke-bench does  // pass each record's locality prompt as the edit's unrelated prompt (EasyEdit does)
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return std::string(argv[++i]); };
    if (a == "--data") data = next();
    else if (a == "--t") T = std::stoi(next());
    else if (a == "--p") P = std::stoi(next());
    else if (a == "--seed") seed = std::stoi(next());
    else if (a == "-v") verbose = true;
    else if (a == "--no-loc") give_loc = false;
    else if (a == "--no-subject") give_subject = false;
    else if (a == "--set") {
      std::string kv = next();
      auto eq = kv.find('=');
      std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
      auto j = nlohmann::json::parse(v, nullptr, false);
      overrides[k] = j.is_discarded() ? nlohmann::json(v) : j;
    } else {
      std::cerr << "unknown flag " << a << "\n";
      return 2;
    }
  }
  overrides["seed"] = seed;
  const std::string cfg = "/tmp/edit_quality_cfg_" + std::to_string(::getpid()) + ".json";
  std::ofstream(cfg) << overrides.dump();
  if (auto s = moke::LoadEditorOptions(cfg, &opt); !s.ok()) {
    std::cerr << s << "\n";
    return 2;
  }
  std::ifstream in(data);
  if (!in) {
    std::cerr << "cannot open " << data << "\n";
    return 2;
  }
  auto j = nlohmann::json::parse(in);
  std::vector<Rec> recs;
  for (const auto& r : j) {
    recs.push_back({r["src"], r["alt"], r["rephrase"], r["loc"], r["loc_ans"], r.value("subject", "")});
  }
  std::mt19937_64 rng(seed);
  // Stream: P rounds over T questions; the answers of round p < P-1 are other records' targets.
  std::vector<std::pair<int, std::string>> stream;
  std::vector<std::string> final_answer(T);
  for (int p = 0; p < P; ++p) {
    for (int t = 0; t < T; ++t) {
      std::string ans = recs[t].a;
      if (p < P - 1) {
        std::uniform_int_distribution<size_t> pick(0, recs.size() - 1);
        do ans = recs[pick(rng)].a; while (ans == recs[t].a);
      }
      stream.push_back({t, ans});
      final_answer[t] = ans;
    }
  }
  auto editor = moke::Editor::Create(opt);
  if (!editor.ok()) {
    std::cerr << editor.status() << "\n";
    return 1;
  }
  auto base = (*editor)->Current();
  std::vector<std::vector<int64_t>> loc_base(T);
  for (int t = 0; t < T; ++t) loc_base[t] = base->Score(recs[t].loc, recs[t].loc_ans)->argmax_tokens;
  double unedited_rel = 0;
  for (int t = 0; t < T; ++t) unedited_rel += base->Score(recs[t].q, final_answer[t])->token_accuracy / T;
  std::vector<int> expert_of(T, -1);
  std::vector<double> lat;
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < stream.size(); ++i) {
    moke::EditRequest req{recs[stream[i].first].q, stream[i].second, {}};
    if (give_subject && recs[stream[i].first].q.find(recs[stream[i].first].subject) != std::string::npos) {
      req.subject = recs[stream[i].first].subject;
    }
    if (give_loc) req.unrelated.push_back(recs[stream[i].first].loc);
    auto r = (*editor)->ApplyEdit(req);
    if (!r.ok()) {
      std::cerr << "edit " << i << ": " << r.status() << "\n";
      return 1;
    }
    expert_of[stream[i].first] = r->expert;
    lat.push_back(r->seconds);
    if (verbose) {
      auto v = (*editor)->Current();
      auto s = v->Score(recs[stream[i].first].q, stream[i].second);
      std::fprintf(stderr, "edit %zu q%d expert %d new %d it %d loss %.9g rel_now %.4f route %d %.2fs\n", i, stream[i].first,
                   r->expert, r->new_concept, r->iterations, r->loss, s->token_accuracy, s->route.expert, r->seconds);
    }
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto view = (*editor)->Current();
  double rel = 0, gen = 0, loc = 0, route = 0, loc_route = 0, em = 0;
  for (int t = 0; t < T; ++t) {
    auto s = view->Score(recs[t].q, final_answer[t]);
    auto g = view->Score(recs[t].reph, final_answer[t]);
    auto l = view->Score(recs[t].loc, recs[t].loc_ans);
    rel += s->token_accuracy / T;
    // EM: the free answer (no length hint) equals the final answer, ignoring case and outer spaces.
    auto lower = [](std::string x) {
      for (char& c : x) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      while (!x.empty() && std::isspace(static_cast<unsigned char>(x.back()))) x.pop_back();
      while (!x.empty() && std::isspace(static_cast<unsigned char>(x.front()))) x.erase(x.begin());
      return x;
    };
    auto a = view->Ask(recs[t].q, 0);
    em += (a.ok() && lower(a->answer) == lower(final_answer[t])) / static_cast<double>(T);
    gen += g->token_accuracy / T;
    int same = 0;
    for (size_t k = 0; k < l->argmax_tokens.size(); ++k) same += l->argmax_tokens[k] == loc_base[t][k];
    loc += static_cast<double>(same) / l->argmax_tokens.size() / T;
    route += (s->route.expert == expert_of[t]) / static_cast<double>(T);
    loc_route += (l->route.expert == -1) / static_cast<double>(T);
  }
  std::sort(lat.begin(), lat.end());
  nlohmann::json out = {{"T", T}, {"P", P}, {"seed", seed}, {"method", moke::EditMethodName(opt.method)},
                        {"rel", rel}, {"gen", gen}, {"em_free", em}, {"loc", loc}, {"route_acc", route}, {"loc_to_original", loc_route},
                        {"unedited_rel", unedited_rel}, {"edit_p50_s", lat[lat.size() / 2]},
                        {"edit_p95_s", lat[lat.size() * 95 / 100]}, {"total_s", total}, {"settings", overrides}, {"loc_given", give_loc}};
  std::cout << out.dump() << std::endl;
  return 0;
}
