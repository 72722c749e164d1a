/**
 * The kubernetes source's labelSelector and fieldSelector are checked at config load as the API server parses them
 * (apimachinery's labels.Parse, fields.ParseSelector): what it accepts passes, what it refuses is a config error
 * naming the key (it was a 400 on every list, retried forever, seen only in /readyz).
 */
import { describe, expect, test } from "bun:test";
import { ConfigError, resolveConfig } from "../host/config.ts";
import { builtins } from "../plugins/index.ts";
import { fieldSelectorProblem, labelSelectorProblem } from "../plugins/sources/kubernetes/selectors.ts";

const name63 = `a${"b".repeat(61)}c`;

describe("labelSelector", () => {
  test.each([
    "",
    "  ",
    "app",
    "!app",
    "app=web",
    "app==web",
    "app!=web",
    "app=",
    "app=,tier",
    "app in (web,api)",
    "app notin (web)",
    "app in ()",
    "app in (,)",
    "app in (web,,api,)",
    "app in(web)",
    " app = web , !legacy ,\ttier\nin ( a , b ) ",
    "in in (in,notin)",
    "notin=in",
    "example.com/app=web",
    "kubernetes.io/metadata.name=payments",
    "app.kubernetes.io/part-of!=Shop_1.x",
    "A_b-C.d=X",
    "replicas>1",
    "replicas<007",
    `priority>${2n ** 63n - 1n}`,
    `${name63}=${name63}`,
    `${"a".repeat(253)}/app`,
  ])("accepted: %p", (selector) => {
    expect(labelSelectorProblem(selector)).toBeUndefined();
  });

  test.each([
    ["app=web,", 'the end where a key or "!" belongs'],
    [",app", '"," at character 1 where a key or "!" belongs'],
    ["app,,tier", '"," at character 5 where a key or "!" belongs'],
    ["app web", '"web" at character 5 where an operator (=, ==, !=, in, notin, >, <) belongs'],
    ["app=web tier", '"tier" at character 9 where "," or the end belongs'],
    ["app===web", '"=" at character 6 where a value belongs'],
    ["!app=web", '"=" at character 5 where "," or the end belongs'],
    ["!!app", '"!" at character 2 where a key belongs'],
    ["!", "the end where a key belongs"],
    ["app=(web)", '"(" at character 5 where a value belongs'],
    ["app in web", '"web" at character 8 where "(" belongs'],
    ["app in (web", 'the end where "," or ")" belongs'],
    ["app in (web api)", '"api" at character 13 where "," or ")" belongs'],
    ["app in (!)", '"!" at character 9 where a value, "," or ")" belongs'],
    ["app exists", '"exists" at character 5 where an operator (=, ==, !=, in, notin, >, <) belongs'],
  ])("refused: %p", (selector, problem) => {
    expect(labelSelectorProblem(selector)).toBe(problem);
  });

  test.each([
    ["-app=web", "its name must be"],
    ["app-=web", "its name must be"],
    ["a b=c", "an operator"],
    [`${name63}x`, "its name must be 1-63 characters"],
    ["Example.com/app", "its prefix must be a lowercase DNS subdomain"],
    ["/app", "its prefix must be"],
    ["example.com/", "its name must be"],
    ["a/b/c", 'has more than one "/"'],
    [`${"a".repeat(254)}/app`, "at most 253 characters"],
    ["app=web!", '"!" at character 8'],
    ["app=-web", 'value "-web" of "app" must be empty or up to 63'],
    [`app=${name63}x`, "must be empty or up to 63"],
    ["app in (ok,bad_)", 'value "bad_" of "app"'],
    ["app=wéb", 'value "wéb"'],
    ["replicas>", 'value "" of "replicas" > must be an integer'],
    ["replicas<one", 'value "one" of "replicas" < must be an integer'],
    ["replicas>-1", 'value "-1" of "replicas" must be empty'],
    [`replicas>${2n ** 63n}`, "must be an integer"],
  ])("refused: %p (%s)", (selector, problem) => {
    expect(labelSelectorProblem(selector)).toContain(problem);
  });
});

describe("fieldSelector", () => {
  test.each([
    "",
    ",",
    "spec.nodeName=node-1",
    "spec.nodeName==node-1",
    "status.phase!=Running",
    "metadata.name=",
    "metadata.namespace=a,,status.phase=Running,",
    "metadata.name=a\\,b\\=c\\\\d",
    "metadata.name=a!b",
    "metadata.name=with space",
  ])("accepted: %p", (selector) => {
    expect(fieldSelectorProblem(selector)).toBeUndefined();
  });

  test.each([
    ["spec.nodeName", '"spec.nodeName" is not field=value, field==value or field!=value'],
    ["a=b,c", '"c" is not field=value, field==value or field!=value'],
    ["=node-1", '"=node-1" names no field'],
    ["metadata.name=a=b", '"metadata.name=a=b": a "=" in a value is written "\\="'],
    ["metadata.name!=a!=b", '"metadata.name!=a!=b": a "=" in a value is written "\\="'],
    ["metadata.name===a", '"metadata.name===a": a "=" in a value is written "\\="'],
    // No escape holds in a field's name: the first "=" ends it.
    ["a\\=b=c", '"a\\=b=c": a "=" in a value is written "\\="'],
    ["metadata.name=a\\", '"metadata.name=a\\" ends with a lone "\\"'],
    ["metadata.name=a\\!b", '"metadata.name=a\\!b": "\\!" is no escape ("\\" escapes \\ , = only)'],
    ["metadata.name=a\\nb", '"metadata.name=a\\nb": "\\n" is no escape ("\\" escapes \\ , = only)'],
  ])("refused: %p", (selector, problem) => {
    expect(fieldSelectorProblem(selector)).toBe(problem);
  });
});

test("a selector the API server would refuse is a config error at its key, both named at once", async () => {
  const source = { type: "kubernetes", labelSelector: "app in (web", fieldSelector: "spec.nodeName" };
  const error = await resolveConfig(
    {
      sources: [
        { type: "kubernetes", name: "fine", labelSelector: "app=web", fieldSelector: "spec.nodeName=n1" },
        { name: "broken", ...source },
      ],
    },
    { baseDir: process.cwd(), registry: builtins, env: {} },
  ).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).issues).toEqual([
    { path: "sources[1].labelSelector", message: 'the end where "," or ")" belongs' },
    {
      path: "sources[1].fieldSelector",
      message: '"spec.nodeName" is not field=value, field==value or field!=value',
    },
  ]);
});
