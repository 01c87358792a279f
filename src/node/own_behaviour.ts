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

/** The methods and accessors of `prototype` and its ancestors below EventEmitter (computed once per class). */
function behaviourOf(prototype: object): PropertyDescriptorMap {
  let descriptors = copies.get(prototype);
  if (descriptors) return descriptors;
  descriptors = {};
  // EventEmitter stays shared: node:http's classes and any prototype a framework puts in derive from it too.
  for (let level: object | null = prototype; level !== null && level !== EventEmitter.prototype; level = Object.getPrototypeOf(level)) {
    for (const key of Reflect.ownKeys(level)) {
      if (key === "constructor" || Object.hasOwn(descriptors, key)) continue;
      descriptors[key as string] = Object.getOwnPropertyDescriptor(level, key)!;
    }
  }
  copies.set(prototype, descriptors);
  return descriptors;
}

/** Makes the behaviour of `instance`'s class its own, so that a prototype swap keeps it. */
export function ownBehaviour(instance: object): void {
  Object.defineProperties(instance, behaviourOf(Object.getPrototypeOf(instance)));
}
