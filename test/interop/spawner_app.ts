// The app the spawner tests (spawn-fcgi, mod_fcgid, systemd-socket-activate) run: it answers with
// the pid that served the request, so a test can count processes and see one replaced, and with
// what it sees of systemd's variables, which `fcgi serve` must have removed once it took the sockets.
// Not a test file itself: importing it has no side effects.
import process from "node:process";

export default {
  fetch(request: Request): Response {
    const path = new URL(request.url).pathname;
    const body = { pid: process.pid, path, listenFds: process.env.LISTEN_FDS ?? null, listenPid: process.env.LISTEN_PID ?? null };
    return new Response(JSON.stringify(body) + "\n", { headers: { "content-type": "application/json" } });
  },
};
