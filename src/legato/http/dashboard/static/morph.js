// legato dashboard: live updates patch the page in place, so they never wipe
// what the operator is doing.
//
// A view is drawn into a detached element, then merged into the page:
// - children with the same data-key are matched; an unchanged one stays as it
//   is (same node: its scroll position, focus and listeners stay);
// - an element marked data-patch is merged child by child (a table body row by
//   row), so one changed row replaces one row;
// - an element the operator is busy with stays untouched until they are done:
//   it holds the focused field, a field whose value they changed, or an open
//   panel (data-open);
// - rows attached to a keyed row (data-attached-to, like an open inspection
//   beside its dead letter) stay beside it.
"use strict";

const FIELDS = "input, textarea, select";

function isField(el) {
  return el instanceof Element && el.matches(FIELDS);
}

function dirty(field) {
  if (field instanceof HTMLSelectElement) {
    if (field.multiple) return [...field.options].some((o) => o.selected !== o.defaultSelected);
    // A single select with no option marked selected shows its first one.
    const marked = [...field.options].findIndex((o) => o.defaultSelected);
    return field.selectedIndex !== (marked >= 0 ? marked : Math.min(0, field.options.length - 1));
  }
  if (field.type === "checkbox" || field.type === "radio") return field.checked !== field.defaultChecked;
  return field.value !== field.defaultValue;
}

// Whether the operator is busy with this element (or something in it).
function busy(el) {
  if (!(el instanceof Element)) return false;
  const active = document.activeElement;
  if (active && isField(active) && el.contains(active)) return true;
  if (el.matches("[data-open]") || el.querySelector("[data-open]")) return true;
  const fields = isField(el) ? [el] : el.querySelectorAll(FIELDS);
  for (const field of fields) if (!field.hasAttribute("data-transient") && dirty(field)) return true;
  return false;
}

function keyOf(node) {
  return node instanceof Element ? node.getAttribute("data-key") : null;
}

function syncAttributes(target, source) {
  for (const { name } of [...target.attributes]) if (!source.hasAttribute(name)) target.removeAttribute(name);
  for (const { name, value } of [...source.attributes]) if (target.getAttribute(name) !== value) target.setAttribute(name, value);
}

// The node to keep in place of `prior` given its fresh rendering.
function merge(prior, fresh) {
  if (prior.tagName === fresh.tagName && prior.hasAttribute("data-patch") && fresh.hasAttribute("data-patch")) {
    syncAttributes(prior, fresh);
    patchChildren(prior, fresh);
    return prior;
  }
  if (busy(prior) || prior.isEqualNode(fresh)) return prior;
  return fresh;
}

// Make `target`'s children what `source`'s are, reusing keyed nodes.
function patchChildren(target, source) {
  const byKey = new Map();
  const attached = new Map();
  for (const child of target.children) {
    const key = keyOf(child);
    if (key !== null) byKey.set(key, child);
    const owner = child.getAttribute("data-attached-to");
    if (owner !== null) attached.set(owner, [...(attached.get(owner) || []), child]);
  }
  const result = [];
  for (const child of [...source.childNodes]) {
    const key = keyOf(child);
    const prior = key !== null ? byKey.get(key) : undefined;
    result.push(prior ? merge(prior, child) : child);
    if (key !== null && attached.has(key)) result.push(...attached.get(key));
  }
  const keep = new Set(result);
  for (const child of [...target.childNodes]) if (!keep.has(child)) child.remove();
  let cursor = target.firstChild;
  for (const node of result) {
    if (node === cursor) cursor = cursor.nextSibling;
    else target.insertBefore(node, cursor);
  }
}

window.morph = { patchChildren, busy };
