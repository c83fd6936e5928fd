#include "cmdline/cmdline.h"

#include <algorithm>
#include <sstream>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace bkv::cmdline {
namespace {}  // namespace

std::string Wrap(const std::string& text, size_t indent, size_t width) {
  std::string out;
  const std::string margin(indent, ' ');
  for (absl::string_view para : absl::StrSplit(text, "\n\n")) {
    if (!out.empty()) out += "\n";
    std::string line;
    for (absl::string_view word :
         absl::StrSplit(para, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
      if (!line.empty() && line.size() + word.size() + 1 > width) {
        absl::StrAppend(&out, line, "\n");
        line.clear();
      }
      absl::StrAppend(&line, line.empty() ? margin : " ", word);
    }
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

namespace {

// "bkv vault status": a command's words from the root.
std::string FullName(const CLI::App* app) {
  std::string name = app->get_name();
  for (const CLI::App* p = app->get_parent(); p; p = p->get_parent()) {
    name = absl::StrCat(p->get_name(), " ", name);
  }
  return name;
}

// Usage first (the line scripts and man pages look for), then what the
// command does, its arguments and flags by group, its subcommands by full
// name (leaves only), and the footer.
class HelpFormatter : public CLI::Formatter {
 public:
  HelpFormatter() {
    label("Usage", "usage");
    column_width(28);
  }
  std::string make_help(const CLI::App* app, std::string name,
                        CLI::AppFormatMode mode) const override {
    if (mode == CLI::AppFormatMode::Sub) return make_expanded(app);
    // A command's details follow its summary; the root's footer (settings,
    // exit codes) comes last.
    const bool root = app->get_parent() == nullptr;
    return absl::StrCat(make_usage(app, name), make_description(app),
                        root ? "" : make_footer(app), make_positionals(app),
                        make_groups(app, mode), make_subcommands(app, mode),
                        root ? make_footer(app) : "");
  }
  std::string make_description(const CLI::App* app) const override {
    const std::string& d = app->get_description();
    return d.empty() ? d : Wrap(d);
  }
  std::string make_footer(const CLI::App* app) const override {
    const std::string& f = app->get_footer();
    if (f.empty()) return f;
    return absl::StrCat("\n", f, f.back() == '\n' ? "" : "\n");
  }
  // The description wrapped beside the flag, not past column 78.
  std::string make_option(const CLI::Option* opt,
                          bool positional) const override {
    std::string name = absl::StrCat("  ", make_option_name(opt, positional),
                                    make_option_opts(opt));
    const size_t col = column_width_ + 2;
    const std::string text = make_option_desc(opt);
    if (text.empty()) return name + "\n";
    std::string desc = Wrap(text, col, 78);
    if (name.size() + 1 > col) return absl::StrCat(name, "\n", desc);
    return absl::StrCat(name, desc.substr(name.size()));
  }
  std::string make_subcommand(const CLI::App* sub) const override {
    auto leaves = sub->get_subcommands({});
    if (leaves.empty()) {
      std::stringstream out;
      // The trailing space keeps two between a long name and its summary.
      CLI::detail::format_help(out, FullName(sub) + " ", sub->get_description(),
                               column_width_);
      return out.str();
    }
    std::string out;
    for (const CLI::App* leaf : leaves) out += make_subcommand(leaf);
    return out;
  }
};

// Levenshtein distance, for typo suggestions.
size_t Distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min(
          {row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

std::vector<std::string> WordsAfter(const CLI::App& cmd) {
  std::vector<std::string> words;
  for (const CLI::App* sub : cmd.get_subcommands({})) {
    words.push_back(sub->get_name());
  }
  for (const CLI::Option* o : cmd.get_options()) {
    if (!o->get_positional()) {
      for (const std::string& n : o->get_lnames()) words.push_back("--" + n);
      for (const std::string& n : o->get_snames()) words.push_back("-" + n);
    }
  }
  return words;
}

std::shared_ptr<CLI::Formatter> MakeHelpFormatter() {
  return std::make_shared<HelpFormatter>();
}

std::unique_ptr<CLI::App> MakeRoot(const char* name, const char* version) {
  auto root = std::make_unique<CLI::App>("", name);
  root->formatter(MakeHelpFormatter());
  root->set_help_flag("-h,--help", "this text");
  root->set_version_flag("--version", version, "the version");
  root->require_subcommand(1);
  root->option_defaults()->multi_option_policy(
      CLI::MultiOptionPolicy::TakeLast);
  return root;
}

const CLI::App& Selected(const CLI::App& root,
                         std::vector<std::string>* words) {
  const CLI::App* app = &root;
  for (;;) {
    auto subs = app->get_subcommands();
    if (subs.empty()) return *app;
    app = subs[0];
    if (words) words->push_back(app->get_name());
  }
}

std::vector<std::string> CommandNames(const CLI::App& root) {
  std::vector<std::string> names;
  std::vector<const CLI::App*> todo = {&root};
  while (!todo.empty()) {
    const CLI::App* app = todo.back();
    todo.pop_back();
    if (app != &root) {
      names.push_back(FullName(app).substr(root.get_name().size() + 1));
    }
    auto subs = app->get_subcommands({});
    todo.insert(todo.end(), subs.rbegin(), subs.rend());
  }
  return names;
}

namespace {

// "; did you mean `--to` for `--too`?" for the first word the selected
// command did not take that is at most two edits from one it knows, and at
// most one per three letters (`x` is no typo of `-h`).
std::string Suggest(const CLI::App& root) {
  const std::vector<std::string> known = WordsAfter(Selected(root, nullptr));
  for (std::string word : root.remaining(true)) {
    word = word.substr(0, word.find('='));
    std::string best;
    size_t best_d = 3;
    for (const std::string& k : known) {
      const size_t d = Distance(word, k);
      if (d < best_d && d * 3 <= word.size()) best = k, best_d = d;
    }
    if (!best.empty()) {
      return absl::StrCat("; did you mean `", best, "` for `", word, "`?");
    }
  }
  return "";
}

}  // namespace

std::string UsageError(const CLI::App& root, const CLI::ParseError& e) {
  std::vector<std::string> words = {root.get_name()};
  Selected(root, &words);
  return absl::StrCat("usage: ", e.what(), Suggest(root), "; see `",
                      absl::StrJoin(words, " "), " --help`");
}

CLI::Option* NeedsValue(CLI::Option* opt) {
  return opt->check(
      [](const std::string& v) -> std::string {
        if (v.size() > 2 && v.starts_with("--")) {
          return absl::StrCat("needs a value (got the flag ", v, ")");
        }
        return "";
      },
      "", "value");
}

std::vector<std::string> Arguments(int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.starts_with("--") && a.size() > 3 && a.back() == '=') {
      a.pop_back();
      args.push_back(a);
      args.emplace_back();
      continue;
    }
    args.push_back(std::move(a));
  }
  return args;
}

std::string BashCompletion(const CLI::App& root, const std::string& function) {
  std::string cases;
  std::vector<std::pair<std::string, const CLI::App*>> todo = {{"", &root}};
  while (!todo.empty()) {
    auto [words, app] = todo.back();
    todo.pop_back();
    absl::StrAppend(&cases, "    \"", words, "\") echo \"",
                    absl::StrJoin(WordsAfter(*app), " "), "\" ;;\n");
    for (const CLI::App* sub : app->get_subcommands({})) {
      todo.emplace_back(
          absl::StrCat(words, words.empty() ? "" : " ", sub->get_name()), sub);
    }
  }
  const std::string& name = root.get_name();
  return absl::StrCat("# bash completion for ", name, " (generated by `", name,
                      " completion bash`)\n", function,
                      "_words() {\n  case $1 in\n", cases,
                      "    *) return 1 ;;\n"
                      "  esac\n"
                      "}\n",
                      function,
                      "() {\n"
                      "  local cur=${COMP_WORDS[COMP_CWORD]} words\n"
                      "  if ((COMP_CWORD > 2)) &&\n"
                      "    words=$(",
                      function,
                      "_words \"${COMP_WORDS[1]} ${COMP_WORDS[2]}\"); then :\n"
                      "  elif ((COMP_CWORD > 1)); then\n"
                      "    words=$(",
                      function,
                      "_words \"${COMP_WORDS[1]}\") || words=\"\"\n"
                      "  else\n"
                      "    words=$(",
                      function,
                      "_words \"\")\n"
                      "  fi\n"
                      "  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
                      "}\n"
                      "complete -o default -F ",
                      function, " ", name, "\n");
}

}  // namespace bkv::cmdline
