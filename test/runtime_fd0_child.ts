// Child process of test/runtime_fd0.test.ts: started with a listening socket (or not) on fd 0, it
// accepts on it through the named adapter, echoes one connection, then exits. Does nothing without
// its flag, since Node's test runner also runs every file in dist/test/ on its own.
import process from "node:process";
import { formatAddress } from "../src/address.ts";
import { getRuntime, type RuntimeName } from "../src/runtime/index.ts";
import type { Listener } from "../src/socket.ts";

const flag = process.argv.indexOf("--fcgi-fd0-child");
if (flag >= 0) {
  const name = process.argv[flag + 1] as RuntimeName;
  // Never outlive the test, whatever happens.
  const timer = setTimeout(() => {
    console.log("error TIMEOUT the child waited too long for a connection");
    process.exit(3);
  }, 20_000);
  try {
    const runtime = await getRuntime(name);
    let listener: Listener | undefined;
    listener = await runtime.listen({ transport: "fd", fd: 0 }, (connection) => ({
      onData: (chunk) => void connection.write([chunk]),
      onDrain: () => {},
      onClose: () => {
        void listener?.close().then(() => {
          clearTimeout(timer);
          process.exit(0);
        });
      },
    }));
    console.log(`listening ${formatAddress(listener.address)} ${runtime.name}`);
  } catch (error) {
    console.log(`error ${(error as { code?: string }).code} ${(error as Error).message}`);
    clearTimeout(timer);
    process.exit(1);
  }
}
