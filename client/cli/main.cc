#include <cstdio>

#include "client/cli/cli.h"

int main(int argc, char** argv) {
  return bkv::cli::Run(argc, argv, stdout, stderr);
}
