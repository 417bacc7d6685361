#include "core/editor/rehearsal.h"

#include <algorithm>

namespace moke {

const std::string& RehearsedWording(const HeldEdit& held, std::mt19937_64& rng) {
  const size_t n = held.earlier_wordings.size();
  if (n == 0) return held.question;
  const size_t i = static_cast<size_t>(rng() % (n + 1));
  return i == n ? held.question : held.earlier_wordings[i];
}

std::vector<size_t> PlanRehearsal(const std::vector<HeldEdit>& history, int expert, const LiveAfter& live,
                                  int retention, std::mt19937_64& rng) {
  std::vector<size_t> rehearse;
  if (retention <= 0) return rehearse;
  std::vector<size_t> held;
  for (size_t h = 0; h < history.size(); ++h) {
    if (live(h) && history[h].expert == expert) held.push_back(h);
  }
  const size_t recent = std::min(held.size(), static_cast<size_t>((retention + 1) / 2));
  rehearse.assign(held.end() - static_cast<std::ptrdiff_t>(recent), held.end());
  held.resize(held.size() - recent);
  std::shuffle(held.begin(), held.end(), rng);
  for (size_t i = 0; i < held.size() && static_cast<int>(rehearse.size()) < retention; ++i) {
    rehearse.push_back(held[i]);
  }
  return rehearse;
}

std::optional<size_t> ReplayBuffer::Pick(int expert, const LiveAfter& live, std::mt19937_64& rng) const {
  std::vector<size_t> others;
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].expert != expert && live(entries_[i].edit)) others.push_back(i);
  }
  if (others.empty()) return std::nullopt;
  std::uniform_int_distribution<size_t> pick(0, others.size() - 1);
  return others[pick(rng)];
}

void ReplayBuffer::Commit(std::optional<size_t> picked, size_t edit, int expert, at::Tensor a) {
  if (picked && static_cast<int>(entries_.size()) >= capacity_) {
    entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(*picked));
  }
  if (capacity_ <= 0) return;
  if (static_cast<int>(entries_.size()) >= capacity_) entries_.erase(entries_.begin());
  entries_.push_back({edit, expert, std::move(a)});
}

}  // namespace moke
