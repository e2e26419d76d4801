// Drives llm serve with the official OpenAI Node client. Run by
// TestOpenAINodeClient (openai_node_test.go), which installs the "openai"
// package next to a copy of this script and passes, in the environment:
//   LLM_BASE_URL  the server's /v1 URL
//   LLM_API_KEY   the server's API key
//   LLM_MODEL     a model name
//   LLM_PROMPT    a prompt, and LLM_EXPECT its greedy continuation of
//   LLM_TOKENS    tokens
// It prints one line per check and exits 1 at the first failure.
import OpenAI from "openai";

const env = (name) => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const model = env("LLM_MODEL");
const prompt = env("LLM_PROMPT");
const expect = env("LLM_EXPECT");
const tokens = Number(env("LLM_TOKENS"));
const client = new OpenAI({ baseURL: env("LLM_BASE_URL"), apiKey: env("LLM_API_KEY"), maxRetries: 0, timeout: 60_000 });

function check(name, ok, detail) {
  if (!ok) {
    console.error(`FAIL ${name}: ${detail}`);
    process.exit(1);
  }
  console.log(`ok ${name}`);
}

// Chat completion.
const chat = await client.chat.completions.create({
  model, messages: [{ role: "user", content: prompt }], temperature: 0, max_tokens: tokens,
});
check("chat", chat.choices[0].message.content === expect && chat.choices[0].finish_reason === "length" &&
  chat.usage.completion_tokens === tokens, JSON.stringify(chat));

// Streaming chat completion, with usage.
const stream = await client.chat.completions.create({
  model, messages: [{ role: "user", content: prompt }], temperature: 0, max_tokens: tokens, stream: true,
  stream_options: { include_usage: true },
});
let text = "";
let chunks = 0;
let usage = null;
let finish = null;
for await (const chunk of stream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  for (const choice of chunk.choices) {
    text += choice.delta?.content ?? "";
    if (choice.finish_reason) finish = choice.finish_reason;
  }
}
check("chat stream", text === expect && chunks > 2 && finish === "length" && usage?.completion_tokens === tokens,
  JSON.stringify({ text, chunks, finish, usage }));

// The stream helper that assembles the final message.
const runner = client.beta.chat.completions.stream({
  model, messages: [{ role: "user", content: prompt }], temperature: 0, max_tokens: tokens,
});
const final = await runner.finalChatCompletion();
check("chat stream helper", final.choices[0].message.content === expect, JSON.stringify(final.choices[0]));

// n choices: indexed, each the greedy text, counted in the usage; the
// stream helper assembles the interleaved chunks of each choice by index.
const two = await client.chat.completions.create({
  model, messages: [{ role: "user", content: prompt }], temperature: 0, max_tokens: tokens, n: 2,
});
check("chat n", two.choices.length === 2 && two.choices.every((c, i) => c.index === i && c.message.content === expect) &&
  two.usage.completion_tokens === 2 * tokens, JSON.stringify(two));
const twoRunner = client.beta.chat.completions.stream({
  model, messages: [{ role: "user", content: prompt }], temperature: 0, max_tokens: tokens, n: 2,
});
const twoFinal = await twoRunner.finalChatCompletion();
check("chat n stream helper", twoFinal.choices.length === 2 &&
  twoFinal.choices.every((c, i) => c.index === i && c.message.content === expect && c.finish_reason === "length"),
  JSON.stringify(twoFinal.choices));

// Legacy completion.
const completion = await client.completions.create({ model, prompt, temperature: 0, max_tokens: tokens });
check("completion", completion.choices[0].text === expect, JSON.stringify(completion));

// Embeddings: the client asks for base64 and decodes it.
const emb = await client.embeddings.create({ model, input: ["The little dog", "Lily"] });
const v = emb.data[0].embedding;
const norm = v.reduce((s, x) => s + x * x, 0);
check("embeddings", emb.data.length === 2 && v.length > 0 && Math.abs(norm - 1) < 1e-3, `${emb.data.length} vectors, norm² ${norm}`);

// Models.
const models = [];
for await (const m of client.models.list()) models.push(m.id);
check("models", models.includes(model), JSON.stringify(models));
const one = await client.models.retrieve(model);
check("model", one.id === model, JSON.stringify(one));

// Errors come back as the client's typed errors.
try {
  await client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] });
  check("not found", false, "no error");
} catch (e) {
  check("not found", e instanceof OpenAI.NotFoundError && e.status === 404 && /no-such-model/.test(e.message), String(e));
}
try {
  await client.chat.completions.create({ model, messages: [{ role: "user", content: "x" }], temperature: 9 });
  check("bad request", false, "no error");
} catch (e) {
  check("bad request", e instanceof OpenAI.BadRequestError && e.param === "temperature", String(e));
}
const wrongKey = new OpenAI({ baseURL: env("LLM_BASE_URL"), apiKey: "wrong", maxRetries: 0 });
try {
  await wrongKey.models.list();
  check("wrong key", false, "no error");
} catch (e) {
  check("wrong key", e instanceof OpenAI.AuthenticationError, String(e));
}
console.log("all ok");
