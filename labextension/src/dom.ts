/** A small helper to build DOM trees without a framework. */

type Child = Node | string | null | undefined | false;

/** `h('div', {class: 'x'}, child, ...)`: an element with attributes and children (null/false skipped). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | undefined> = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) {
      continue;
    }
    node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    node.append(child);
  }
  return node;
}

/** Show `message` (or hide it when empty) in the `.dkrz-field-error` slot of `field` under `root`. */
export function showFieldError(
  root: HTMLElement,
  field: string,
  message: string
): void {
  const slot = root.querySelector<HTMLElement>(
    `.dkrz-field-error[data-field="${field}"]`
  );
  if (slot) {
    slot.textContent = message;
    slot.hidden = !message;
    if (message) {
      slot.scrollIntoView({ block: 'nearest' });
    }
  }
}

/** An empty, hidden error slot for `field`, announced to screen readers when it fills. */
export function errorSlot(field: string): HTMLElement {
  return h('div', {
    class: 'dkrz-field-error',
    'data-field': field,
    role: 'alert',
    hidden: true
  });
}
