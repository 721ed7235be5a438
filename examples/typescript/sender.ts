// A chat platform talking to casebridge through types generated from its
// OpenAPI document (docs/openapi.json) with openapi-typescript, and the
// openapi-fetch client: create an org, Test & Save against Creatio, point
// deliveries at the receiver, send a conversation's events, read the
// conversation back, wait for the signed `case.linked` delivery, list the
// deliveries. Exits 1 naming the step that failed.
import { randomUUID } from "node:crypto";
import createClient from "openapi-fetch";
import type { components, paths } from "./casebridge.js";
import { portOf, serve, type Delivery } from "./receiver.js";

type Event = components["schemas"]["TypedEvent"];

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: source the file \`casebridge demo --write-env\` wrote`);
  return value;
}

function ok<T>(step: string, answer: { data?: T; error?: unknown; response: Response }): T {
  if (answer.data === undefined) {
    throw new Error(`${step}: HTTP ${answer.response.status} ${JSON.stringify(answer.error)}`);
  }
  console.log(`  [ok] ${step}`);
  return answer.data;
}

async function main(): Promise<void> {
  const baseUrl = env("CASEBRIDGE_URL");
  const operator = createClient<paths>({
    baseUrl,
    headers: { Authorization: `Bearer ${env("CASEBRIDGE_OPERATOR_TOKEN")}` },
  });
  const created = ok("create an org", await operator.POST("/v1/orgs", { body: { name: "TypeScript example" } }));
  const api = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${created.api_key.key}` } });

  const saved = ok(
    "Test & Save against Creatio",
    await api.POST("/v1/creatio/connection", {
      body: {
        instance_url: env("CREATIO_URL"),
        client_id: env("CREATIO_CLIENT_ID"),
        client_secret: env("CREATIO_CLIENT_SECRET"),
      },
    }),
  );
  if (!saved.report.ok) throw new Error(`a check failed: ${JSON.stringify(saved.report)}`);

  const first = ok(
    "set a delivery URL (to learn the signing secret)",
    await api.PUT("/v1/delivery", { body: { url: "http://127.0.0.1:9/" } }),
  );
  const received: Delivery[] = [];
  const server = await serve(first.secret, 0, (delivery) => received.push(delivery));
  ok(
    "point deliveries at the receiver",
    await api.PUT("/v1/delivery", { body: { url: `http://127.0.0.1:${portOf(server)}/hooks/casebridge` } }),
  );

  const conversation = `ts-${randomUUID().slice(0, 8)}`;
  const events: Event[] = [
    ["customer", "My printer is on fire."],
    ["ai", "Please unplug it first."],
  ].map(([role, text], n) => ({
    id: `${conversation}-e${n}`,
    type: "message.created",
    occurred_at: `2026-12-01T10:0${n}:00Z`,
    conversation: { id: conversation, channel: "web", contact: { name: "Ada Lovelace", email: "ada@example.com" } },
    message: { id: `${conversation}-m${n}`, role: role ?? "customer", text: text ?? "" },
  }));
  const ingested = ok("send two events", await api.POST("/v1/events", { body: events }));
  if (ingested.accepted !== 2) throw new Error(`accepted ${ingested.accepted}`);

  let read: components["schemas"]["ConversationOut"] | undefined;
  for (let i = 0; i < 100; i++) {
    const answer = await api.GET("/v1/conversations/{id}", { params: { path: { id: conversation } } });
    read = answer.data;
    if (read && read.messages.written === 2 && !read.jobs["open"]) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!read || !read.case.number) throw new Error(`the conversation never synced: ${JSON.stringify(read)}`);
  console.log(`  [ok] read the conversation back: case ${read.case.number}, state ${read.state}`);

  for (let i = 0; i < 300 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
  const delivery = received[0];
  if (!delivery || delivery.type !== "case.linked") throw new Error(`no case.linked delivery: ${JSON.stringify(received)}`);
  console.log(`  [ok] the receiver verified a signed ${delivery.type} delivery`);

  const listed = ok("list the deliveries", await api.GET("/v1/deliveries", {}));
  if (!listed.deliveries.some((d) => d.type === "case.linked" && d.state === "delivered")) {
    throw new Error(`no delivered case.linked: ${JSON.stringify(listed)}`);
  }
  server.close();
  console.log("Every step passed.");
}

main().catch((e: unknown) => {
  console.error(`[FAIL] ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
