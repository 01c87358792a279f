// An Express 5 app that plays both FastCGI roles through fcgi/node, for a web server with an
// authorizer (lighttpd, Apache's mod_authnz_fcgi):
//   node_authorizer_app.ts <host:port>
// The first middleware answers authorizer requests: 200 with Variable-FCGI_USER for
// "Bearer good-token", else 401. Responder requests go on to the routes, under / and /private/
// (Apache guards /private/ only). Prints "listening" when ready.
import express from "express";
import { Role } from "../../src/protocol/constants.ts";
import { createServer, requestContext } from "../../node.ts";

const address = process.argv[2]!;
const host = address.slice(0, address.lastIndexOf(":"));
const port = Number(address.slice(address.lastIndexOf(":") + 1));

/** How many requests each role has seen: a denied request must never reach the responder. */
const seen = { authorizer: 0, responder: 0 };

const app = express();
app.use((req, res, next) => {
  if (requestContext(req)?.role !== Role.AUTHORIZER) return next();
  seen.authorizer++;
  if (req.get("authorization") === "Bearer good-token") {
    res.set("Variable-FCGI_USER", "alice").status(200).end();
  } else {
    res.status(401).set("WWW-Authenticate", 'Bearer realm="fcgi"').type("text/plain").send("denied by the Express authorizer\n");
  }
});
app.use((_req, _res, next) => {
  seen.responder++;
  next();
});
app.get(["/whoami", "/private/whoami"], (req, res) => {
  const context = requestContext(req)!;
  res.json({
    role: context.role,
    path: req.path,
    user: context.params.get("FCGI_USER") ?? null,
    remoteUser: context.params.get("REMOTE_USER") ?? null,
    // A client's own "FCGI-User" header: a header, never the authorizer's param.
    userHeader: req.get("fcgi-user") ?? null,
    seen,
  });
});
app.post(["/json", "/private/json"], express.json(), (req, res) => {
  res.json({ received: req.body, user: requestContext(req)!.params.get("FCGI_USER") ?? null });
});

createServer(app).listen(port, host, () => console.log("listening"));
