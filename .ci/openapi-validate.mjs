// Validates an OpenAPI 3.1 document (by default http/openapi.json) in two
// passes, and exits 1 if it is invalid, 2 if the tools are missing:
//
//  1. @apidevtools/swagger-parser checks the document against the OpenAPI
//     3.1 schema and resolves every $ref.
//  2. That schema takes any object as a Schema Object, so every schema in
//     the document is then compiled by Ajv (swagger-parser's own dependency)
//     as JSON Schema 2020-12 in strict mode: a misspelt type, an unknown
//     keyword or a malformed pattern fails here.
//
// What neither checks (path parameters declared, operation IDs unique, the
// document matching the routes and the answers) http/openapi_test.go does.
//
// `make openapi-validate` installs swagger-parser into .cache/npm and runs
// this; SWAGGER_PARSER_PREFIX names another npm prefix holding it.
//
//   node .ci/openapi-validate.mjs [document]
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const prefix = path.resolve(root, process.env.SWAGGER_PARSER_PREFIX ?? ".cache/npm");
const file = path.resolve(process.argv[2] ?? path.join(root, "http/openapi.json"));
const name = path.relative(process.cwd(), file);

let SwaggerParser, Ajv2020;
try {
  // Resolve from prefix as if a module there asked, and Ajv from
  // swagger-parser's own place.
  const req = createRequire(path.join(prefix, "noop.js"));
  SwaggerParser = req("@apidevtools/swagger-parser");
  Ajv2020 = createRequire(req.resolve("@apidevtools/swagger-parser"))("ajv/dist/2020").default;
} catch (err) {
  console.error(`openapi-validate: @apidevtools/swagger-parser is not installed under ${prefix}: run make openapi-validate (${err.code ?? err.message})`);
  process.exit(2);
}

function fail(pass, err) {
  console.error(`${name}: invalid (${pass}): ${err.message}`);
  for (const d of err.details ?? err.errors ?? []) {
    console.error(`  ${d.instancePath ?? ""} ${d.message ?? JSON.stringify(d)}`);
  }
  process.exit(1);
}

// Pass 1.
let api;
try {
  // validate dereferences in place; keep the document as written for pass 2.
  api = await SwaggerParser.validate(JSON.parse(readFileSync(file, "utf8")));
} catch (err) {
  fail("swagger-parser", err);
}

// Pass 2. Every Schema Object becomes a $defs entry of one schema, with
// references to components/schemas rewritten to point there, and each is
// compiled on its own.
const doc = JSON.parse(readFileSync(file, "utf8"));
const defs = {};
const key = (ptr) => ptr.replace(/[^A-Za-z0-9_.-]/g, "_");
for (const [n, s] of Object.entries(doc.components?.schemas ?? {})) {
  defs[`components_schemas_${n}`] = s;
}
(function collect(v, ptr) {
  if (Array.isArray(v)) {
    v.forEach((c, i) => collect(c, `${ptr}/${i}`));
  } else if (v && typeof v === "object") {
    for (const [k, c] of Object.entries(v)) {
      if (k === "schema" && ptr !== "#/components/schemas") {
        defs[key(`${ptr}/schema`)] = c;
      } else if (ptr !== "#/components" || k !== "schemas") {
        collect(c, `${ptr}/${k}`);
      }
    }
  }
})(doc, "#");
const rewritten = JSON.parse(JSON.stringify(defs), (k, v) =>
  k === "$ref" && typeof v === "string" && v.startsWith("#/components/schemas/")
    ? `#/$defs/components_schemas_${v.slice("#/components/schemas/".length)}`
    : v,
);
// strictRequired is off: an allOf may require what another part defines.
const ajv = new Ajv2020({ strict: true, strictRequired: false, strictTypes: false, validateFormats: false, allErrors: true, discriminator: true });
// The OpenAPI 3.1 dialect's annotations (discriminator is Ajv's own).
ajv.addVocabulary(["example", "externalDocs", "xml"]);
try {
  ajv.addSchema({ $id: "https://openapi-validate.invalid/schemas.json", $defs: rewritten });
} catch (err) {
  fail("JSON Schema 2020-12", err);
}
for (const d of Object.keys(rewritten)) {
  try {
    ajv.getSchema(`https://openapi-validate.invalid/schemas.json#/$defs/${d}`) ?? fail("JSON Schema 2020-12", new Error(`${d}: cannot compile`));
  } catch (err) {
    fail("JSON Schema 2020-12", new Error(`${d}: ${err.message}`));
  }
}

const methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const items = Object.values(api.paths ?? {});
const ops = items.reduce((n, item) => n + methods.filter((m) => m in item).length, 0);
console.log(`${name}: valid OpenAPI ${api.openapi} document "${api.info.title}" ${api.info.version}: ${items.length} paths, ${ops} operations, ${Object.keys(rewritten).length} schemas compiled as JSON Schema 2020-12`);
