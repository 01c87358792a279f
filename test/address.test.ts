// Listen/connect addresses as text, and the allow-list of web server addresses (FCGI_WEB_SERVER_ADDRS):
// every accepted form, the inverse formatting, and the malformed inputs that must be refused by name.
import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { ALL_INTERFACES, formatAddress, parseAddress, parseAllowList, parseIPv4, parseIPv6 } from "../src/address.ts";

test("host:port, [v6]:port, :port, a bare port, unix: paths and fd:0 parse to socket addresses", () => {
  assert.deepEqual(parseAddress("127.0.0.1:9000"), { transport: "tcp", hostname: "127.0.0.1", port: 9000 });
  assert.deepEqual(parseAddress("localhost:9000"), { transport: "tcp", hostname: "localhost", port: 9000 });
  assert.deepEqual(parseAddress("php-fpm.internal:9001"), { transport: "tcp", hostname: "php-fpm.internal", port: 9001 });
  assert.deepEqual(parseAddress("[::1]:9000"), { transport: "tcp", hostname: "::1", port: 9000 });
  assert.deepEqual(parseAddress("[::]:0"), { transport: "tcp", hostname: "::", port: 0 });
  assert.deepEqual(parseAddress("[::ffff:127.0.0.1]:80"), { transport: "tcp", hostname: "::ffff:127.0.0.1", port: 80 });
  assert.deepEqual(parseAddress("[fe80::1%eth0]:9000"), { transport: "tcp", hostname: "fe80::1%eth0", port: 9000 });
  assert.deepEqual(parseAddress(":9000"), { transport: "tcp", hostname: "0.0.0.0", port: 9000 });
  assert.deepEqual(parseAddress("9000"), { transport: "tcp", hostname: ALL_INTERFACES, port: 9000 });
  assert.deepEqual(parseAddress(" 127.0.0.1:65535 "), { transport: "tcp", hostname: "127.0.0.1", port: 65535 });
  assert.deepEqual(parseAddress("unix:/run/php/app.sock"), { transport: "unix", path: "/run/php/app.sock" });
  assert.deepEqual(parseAddress("unix:relative.sock"), { transport: "unix", path: "relative.sock" });
  assert.deepEqual(parseAddress("/tmp/app.sock"), { transport: "unix", path: "/tmp/app.sock" });
  assert.deepEqual(parseAddress("fd:0"), { transport: "fd", fd: 0 });
  assert.deepEqual(parseAddress("fd:3"), { transport: "fd", fd: 3 });
  assert.deepEqual(parseAddress("fd:12"), { transport: "fd", fd: 12 });
});

test("malformed addresses are refused with a message naming the input and the reason", () => {
  const cases: Array<[string, RegExp]> = [
    ["", /empty/],
    ["   ", /empty/],
    ["127.0.0.1", /missing :port/],
    ["127.0.0.1:", /missing port/],
    ["localhost:http", /not a number/],
    ["127.0.0.1:65536", /out of range/],
    ["127.0.0.1:99999999999999999999", /out of range/],
    ["127.0.0.1:-1", /not a number/],
    ["127.0.0.1:9000 ", /127\.0\.0\.1:9000/], // trimmed: this one is fine, checked below
    ["256.1.1.1:80", /not an IPv4 address/],
    ["1.2.3:80", /not an IPv4 address/],
    ["::1:9000", /needs brackets/],
    ["[::1]9000", /missing :port/],
    ["[::1:9000", /missing \]/],
    ["[::g]:9000", /not an IPv6 address/],
    ["[127.0.0.1]:9000", /not an IPv6 address/],
    ["[fe80::1%]:9000", /not an IPv6 address/],
    ["[%eth0]:9000", /not an IPv6 address/],
    ["bad host:80", /not a hostname/],
    ["a..b:80", /not a hostname/],
    ["-x:80", /not a hostname/],
    ["unix:", /path is empty/],
    ["fd:1", /fd:0 \(FCGI_LISTENSOCK_FILENO\), or fd:3 and up/],
    ["fd:2", /fd:0 \(FCGI_LISTENSOCK_FILENO\), or fd:3 and up/],
    ["fd:", /fd:0 \(FCGI_LISTENSOCK_FILENO\), or fd:3 and up/],
    ["fd:03", /fd:0 \(FCGI_LISTENSOCK_FILENO\), or fd:3 and up/],
  ];
  for (const [input, why] of cases) {
    if (input === "127.0.0.1:9000 ") {
      assert.equal(parseAddress(input).transport, "tcp");
      continue;
    }
    assert.throws(() => parseAddress(input), (e: unknown) => {
      assert.ok(e instanceof TypeError, `${JSON.stringify(input)} threw ${String(e)}`);
      assert.match(e.message, why, `message for ${JSON.stringify(input)}: ${e.message}`);
      assert.ok(e.message.includes(JSON.stringify(input)), `the message names the input: ${e.message}`);
      return true;
    });
  }
});

test("formatAddress writes what parseAddress reads, with brackets around IPv6", () => {
  const texts = ["127.0.0.1:9000", "[::1]:9000", "[fe80::1]:1", "localhost:0", "unix:/run/app.sock", "fd:0"];
  for (const text of texts) assert.equal(formatAddress(parseAddress(text)), text);
  assert.equal(formatAddress({ transport: "tcp", hostname: "::", port: 9000 }), "[::]:9000");
  assert.equal(formatAddress(parseAddress(":9000")), "0.0.0.0:9000");
});

test("IPv4 and IPv6 literals parse strictly: no leading zeros, one ::, a dotted quad only at the end", () => {
  assert.deepEqual([...parseIPv4("10.0.255.1")!], [10, 0, 255, 1]);
  for (const bad of ["010.0.0.1", "1.2.3", "1.2.3.4.5", "1.2.3.256", "1..2.3", "a.b.c.d", "", " 1.2.3.4"]) assert.equal(parseIPv4(bad), null, bad);
  assert.deepEqual([...parseIPv6("::1")!], [...new Array(15).fill(0), 1]);
  assert.deepEqual([...parseIPv6("::")!], new Array(16).fill(0));
  assert.deepEqual([...parseIPv6("2001:db8::ff00:42:8329")!], [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0x42, 0x83, 0x29]);
  assert.deepEqual([...parseIPv6("::ffff:192.0.2.1")!].slice(10), [0xff, 0xff, 192, 0, 2, 1]);
  assert.deepEqual([...parseIPv6("1:2:3:4:5:6:7:8")!].slice(14), [0, 8]);
  for (const bad of ["1:2:3:4:5:6:7:8:9", "1::2::3", ":::", "12345::", "1:2:3:4:5:6:7", "::1.2.3.4:5", "1.2.3.4::", "::g", "1:2:3:4:5:6:7:8::", "", ":1"]) {
    assert.equal(parseIPv6(bad), null, bad);
  }
});

test("the allow-list admits listed addresses and CIDR ranges, IPv4 and IPv6, and nothing else", () => {
  const allow = parseAllowList("127.0.0.1, 10.0.0.0/8,192.168.1.0/24 ,::1, fd00::/8, 2001:db8::/127");
  assert.deepEqual(allow.entries, ["127.0.0.1", "10.0.0.0/8", "192.168.1.0/24", "::1", "fd00::/8", "2001:db8::/127"]);
  for (const ok of ["127.0.0.1", "10.0.0.0", "10.255.255.255", "192.168.1.77", "::1", "fd12:3456::1", "2001:db8::", "2001:db8::1", "2001:DB8::1"]) {
    assert.equal(allow.allows(ok), true, ok);
  }
  for (const no of ["127.0.0.2", "11.0.0.1", "9.255.255.255", "192.168.2.1", "::2", "fe80::1", "2001:db8::2", "0.0.0.0", "::"]) {
    assert.equal(allow.allows(no), false, no);
  }
});

test("an IPv4 peer reported as IPv4-mapped IPv6 (dual-stack listeners) matches IPv4 entries, and mapped entries match IPv4 peers", () => {
  const allow = parseAllowList("127.0.0.1,10.0.0.0/8");
  assert.equal(allow.allows("::ffff:127.0.0.1"), true);
  assert.equal(allow.allows("::FFFF:10.9.8.7"), true);
  assert.equal(allow.allows("::ffff:7f00:1"), true);
  assert.equal(allow.allows("::ffff:127.0.0.2"), false);
  // The IPv4-compatible (deprecated, not mapped) form is a different address.
  assert.equal(allow.allows("::127.0.0.1"), false);
  const mapped = parseAllowList("::ffff:192.168.0.0/112");
  assert.equal(mapped.allows("192.168.3.4"), true);
  assert.equal(mapped.allows("192.169.0.1"), false);
  assert.equal(parseAllowList("::ffff:0:0/96").allows("203.0.113.9"), true);
});

test("the allow-list applies to TCP only: a Unix socket peer (remote address \"\") is allowed, as in libfcgi and PHP-FPM", () => {
  assert.equal(parseAllowList("127.0.0.1").allows(""), true);
  assert.equal(parseAllowList("").allows(""), true);
});

test("an empty allow-list admits no TCP peer; /0 admits every peer of its family", () => {
  assert.equal(parseAllowList("").allows("127.0.0.1"), false);
  assert.equal(parseAllowList([]).allows("::1"), false);
  assert.equal(parseAllowList(" , ").entries.length, 0);
  const all4 = parseAllowList("0.0.0.0/0");
  assert.equal(all4.allows("8.8.8.8"), true);
  assert.equal(all4.allows("::1"), false);
  assert.equal(parseAllowList("::/0").allows("2001:db8::1"), true);
});

test("host bits after a prefix are ignored, and odd prefix lengths compare bit by bit", () => {
  const allow = parseAllowList("10.1.2.3/8, 172.16.0.0/12, 192.0.2.128/25");
  assert.equal(allow.allows("10.200.0.1"), true);
  assert.equal(allow.allows("172.31.255.255"), true);
  assert.equal(allow.allows("172.32.0.0"), false);
  assert.equal(allow.allows("172.15.255.255"), false);
  assert.equal(allow.allows("192.0.2.128"), true);
  assert.equal(allow.allows("192.0.2.127"), false);
});

test("the allow-list takes an array, whose items may themselves be comma-separated", () => {
  const allow = parseAllowList(["127.0.0.1", "10.0.0.1, 10.0.0.2"]);
  assert.deepEqual(allow.entries, ["127.0.0.1", "10.0.0.1", "10.0.0.2"]);
  assert.equal(allow.allows("10.0.0.2"), true);
  assert.equal(allow.toString(), "127.0.0.1,10.0.0.1,10.0.0.2");
});

test("peer addresses that are not IP literals are refused, an IPv6 zone is ignored", () => {
  const allow = parseAllowList("fe80::/10, 127.0.0.1");
  assert.equal(allow.allows("fe80::1%eth0"), true);
  for (const no of ["localhost", "127.0.0.1:80", "garbage", "127.0.0.01", " 127.0.0.1", "%eth0"]) assert.equal(allow.allows(no), false, no);
});

test("bad allow-list entries are errors naming the entry", () => {
  const cases: Array<[string, string, RegExp]> = [
    ["localhost", "localhost", /not an IPv4 or IPv6 address/],
    ["127.0.0.1, 300.0.0.1", "300.0.0.1", /not an IPv4 or IPv6 address/],
    ["10.0.0.0/33", "10.0.0.0/33", /prefix length must be 0-32/],
    ["::1/129", "::1/129", /prefix length must be 0-128/],
    ["10.0.0.0/", "10.0.0.0/", /prefix length/],
    ["10.0.0.0/-1", "10.0.0.0/-1", /prefix length/],
    ["10.0.0.0/8/8", "10.0.0.0/8/8", /prefix length/],
    ["10.0.0.0/ 8", "10.0.0.0/ 8", /prefix length/],
    ["/8", "/8", /not an IPv4 or IPv6 address/],
    ["fe80::1%eth0", "fe80::1%eth0", /zones/],
    ["1.2.3.4 5.6.7.8", "1.2.3.4 5.6.7.8", /not an IPv4 or IPv6 address/],
    ["127.0.0.1:9000", "127.0.0.1:9000", /not an IPv4 or IPv6 address/],
  ];
  for (const [input, entry, why] of cases) {
    assert.throws(() => parseAllowList(input), (e: unknown) => {
      assert.ok(e instanceof TypeError, `${input}: ${String(e)}`);
      assert.ok(e.message.includes(JSON.stringify(entry)), `names ${entry}: ${e.message}`);
      assert.match(e.message, why);
      return true;
    });
  }
});
