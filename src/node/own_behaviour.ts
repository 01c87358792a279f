/**
 * Keeps a request's or response's behaviour when a framework swaps its prototype. Express does
 * `Object.setPrototypeOf(req, app.request)` and the same for res, where `app.request` derives from
 * node:http's own IncomingMessage (and `app.response` from ServerResponse): on a look-alike that
 * would put node:http's methods (which reach for node:http's private socket state) in place of
 * ours. Copying our classes' methods and accessors onto the instance itself makes them win over
 * any prototype, so Express's own additions (res.send, req.ip, …) sit on top of ours unchanged.
 * @module
 */
import { EventEmitter } from "node:events";

const copies = new WeakMap<object, PropertyDescriptorMap>();

/** The descriptor `key` resolves to along `prototype`'s chain. */
function lookup(prototype: object, key: PropertyKey): PropertyDescriptor | undefined {
  for (let level: object | null = prototype; level !== null; level = Object.getPrototypeOf(level)) {
    const descriptor = Object.getOwnPropertyDescriptor(level, key);
    if (descriptor) return descriptor;
  }
  return undefined;
}

/**
 * The methods and accessors of `prototype` and its ancestors below EventEmitter that `shadow`
 * (node:http's own prototype) would resolve differently (computed once per class). What both
 * share (Readable's and Writable's methods) is found through any prototype a framework puts in,
 * so copying it onto every request only cost time: a tenth of the app's CPU on an Express hello.
 */
function behaviourOf(prototype: object, shadow: object): PropertyDescriptorMap {
  let descriptors = copies.get(prototype);
  if (descriptors) return descriptors;
  descriptors = {};
  // EventEmitter stays shared: node:http's classes and any prototype a framework puts in derive from it too.
  for (let level: object | null = prototype; level !== null && level !== EventEmitter.prototype; level = Object.getPrototypeOf(level)) {
    for (const key of Reflect.ownKeys(level)) {
      if (key === "constructor" || Object.hasOwn(descriptors, key)) continue;
      const own = Object.getOwnPropertyDescriptor(level, key)!;
      const theirs = lookup(shadow, key);
      if (theirs && theirs.value === own.value && theirs.get === own.get && theirs.set === own.set) continue;
      descriptors[key as string] = own;
    }
  }
  copies.set(prototype, descriptors);
  return descriptors;
}

/**
 * Makes the behaviour of `instance`'s class its own where it differs from `shadow` (the node:http
 * prototype a framework's replacement derives from), so that a prototype swap keeps it.
 */
export function ownBehaviour(instance: object, shadow: object): void {
  Object.defineProperties(instance, behaviourOf(Object.getPrototypeOf(instance), shadow));
}
