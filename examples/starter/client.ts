// Calls GreetService on ws://127.0.0.1:8080/ws (the ADDR environment
// variable changes the address) from Node.js.
import { Client, ProtowsError } from "@protows/client";
import WebSocket from "ws";
import { GreetServiceClient } from "./gen/ts/greet/v1/greet_protows.js";

const client = new Client({
  url: `ws://${process.env.ADDR ?? "127.0.0.1:8080"}/ws`,
  codec: "json", // JSON text frames; "proto" (the default) is binary
  WebSocket, // Node 22 and browsers have a global WebSocket; Node 20 needs ws's
});
const greet = new GreetServiceClient(client);

const res = await greet.greet({ name: "TypeScript" });
console.log(res.greeting);

try {
  await greet.greet({ name: "" });
} catch (err) {
  if (!(err instanceof ProtowsError)) throw err;
  console.log("empty name:", err.code);
}

const ns: number[] = [];
for await (const m of greet.countdown({ start: 3 })) ns.push(m.n);
console.log("countdown:", ns.join(" "));

client.close();
