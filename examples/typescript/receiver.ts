// A chat platform's receiving end for casebridge's deliveries: each request
// is verified with the official `standardwebhooks` package (webhook-id,
// webhook-timestamp, webhook-signature over the raw body) before it is
// trusted; a bad signature gets a 401, which casebridge dead-letters.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import type { webhooks } from "./casebridge.js";

/** A delivery's body, by its `type`, as docs/openapi.json's `webhooks` says. */
type Body<T extends keyof webhooks> = NonNullable<
  webhooks[T]["post"]["requestBody"]
>["content"]["application/json"];
export type Delivery = Body<"agent.reply"> | Body<"conversation.resolved"> | Body<"case.linked">;

/** Starts the receiver on 127.0.0.1:`port` (0: any free port); `onDelivery`
 * gets each verified delivery. Resolves with the server once it listens. */
export function serve(
  secret: string,
  port: number,
  onDelivery: (delivery: Delivery, webhookId: string) => void,
): Promise<Server> {
  const hook = new Webhook(secret);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (typeof value === "string") headers[name] = value;
      }
      try {
        const delivery = hook.verify(body, headers) as Delivery;
        onDelivery(delivery, headers["webhook-id"] ?? "");
        res.writeHead(204).end();
      } catch (e) {
        const why = e instanceof WebhookVerificationError ? e.message : String(e);
        res.writeHead(401).end(`bad signature: ${why}`);
      }
    });
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

export function portOf(server: Server): number {
  return (server.address() as AddressInfo).port;
}
