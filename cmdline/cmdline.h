#ifndef BKV_CMDLINE_CMDLINE_H_
#define BKV_CMDLINE_CMDLINE_H_

// What `bkv` and `bkv-vault` share on top of CLI11 (Debian libcli11-dev):
// the help layout (usage line first, wrapped at 78 columns, subcommands by
// their full name), typo suggestions, and walking a parsed command tree.

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

namespace bkv::cmdline {

// `text` as lines of at most `width` columns, each indented by `indent`
// spaces; a blank line in `text` starts a new paragraph.
std::string Wrap(const std::string& text, size_t indent = 2, size_t width = 78);

// The formatter for a root App; its subcommands inherit it.
std::shared_ptr<CLI::Formatter> MakeHelpFormatter();

// A binary's root command, set up alike for bkv and bkv-vault: our help
// formatter, -h/--help, --version, one subcommand required, and a repeated
// flag's last value wins.
std::unique_ptr<CLI::App> MakeRoot(const char* name, const char* version);

// The deepest command a parse selected; its words after the root's name
// are appended to `words` (may be null).
const CLI::App& Selected(const CLI::App& root, std::vector<std::string>* words);

// Every command's words after the root's name ("vault status"), depth
// first.
std::vector<std::string> CommandNames(const CLI::App& root);

// What may follow `cmd`: its subcommands' names and its flags.
std::vector<std::string> WordsAfter(const CLI::App& cmd);

// After a failed parse of `root`: the line to print on stderr, e.g.
// "usage: The following argument was not expected: --too; did you mean
// `--to`?; see `bkv backup --help`".
std::string UsageError(const CLI::App& root, const CLI::ParseError& e);

// Refuses a value that is another flag: CLI11 would take `--listen --dev`
// as listen = "--dev"; this makes it "--listen needs a value".
CLI::Option* NeedsValue(CLI::Option* opt);

// argv as CLI11 should see it: `--flag=` (an empty value, which CLI11
// would fill from the next word) becomes `--flag ""`.
std::vector<std::string> Arguments(int argc, const char* const* argv);

// A bash completion script for `root`'s program: per command, its
// subcommands and flags. `function` names the shell function (`_bkv`).
std::string BashCompletion(const CLI::App& root, const std::string& function);

}  // namespace bkv::cmdline

#endif  // BKV_CMDLINE_CMDLINE_H_
