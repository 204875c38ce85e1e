/**
 * The dialog that creates or edits a Slurm kernel from a template, and the one that registers an own
 * environment. The server validates (the very validation the hub uses); a refusal is shown next to the
 * field it names and nothing is created.
 */
import { Dialog, showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import {
  ApiError,
  IKernelRequest,
  IOffer,
  ITemplate,
  IUserKernel,
  sendJSON
} from './api';
import { errorSlot, h, showFieldError } from './dom';
import { SubmitDialog } from './submitdialog';

/** The fields of the form whose errors have a slot of their own; anything else goes to the general slot. */
const FIELDS = [
  'name',
  'display_name',
  'preset',
  'partition',
  'account',
  'cores',
  'tasks',
  'memory',
  'gpus',
  'runtime',
  'reservation',
  'modules',
  'environment'
];

/** One labelled field with its error slot. */
function field(
  name: string,
  label: string,
  control: HTMLElement,
  hint = ''
): HTMLElement {
  const id = `dkrz-field-${name}-${Private.next++}`;
  control.id = id;
  return h(
    'div',
    { class: 'dkrz-field', 'data-field': name },
    h('label', { for: id }, label),
    control,
    hint ? h('div', { class: 'dkrz-hint' }, hint) : null,
    errorSlot(name)
  );
}

function select(
  name: string,
  options: { value: string; label: string }[],
  chosen: string
): HTMLSelectElement {
  const node = h('select', { name });
  for (const option of options) {
    node.append(
      h(
        'option',
        { value: option.value, selected: option.value === chosen },
        option.label
      )
    );
  }
  return node;
}

function input(
  name: string,
  value: unknown,
  type = 'text',
  placeholder = ''
): HTMLInputElement {
  const attrs: Record<string, string> = { name, type };
  if (placeholder) {
    attrs.placeholder = placeholder;
  }
  if (type === 'number') {
    attrs.min = '0';
    attrs.step = '1';
  }
  const node = h('input', attrs);
  node.value = value === undefined || value === null ? '' : String(value);
  return node;
}

/** The body of the kernel dialog: the form, what it asks the server for, and its errors. */
export class KernelForm extends Widget {
  constructor(
    readonly template: ITemplate,
    readonly offer: IOffer,
    readonly existing: IUserKernel | null
  ) {
    super();
    this.addClass('dkrz-kernel-dialog');
    this.node.append(this.build());
    this.syncMode();
  }

  /** What POST/PUT api/kernels is sent. */
  request(): IKernelRequest {
    const form = this.node;
    const value = (name: string) =>
      (
        form.querySelector(`[name="${name}"]`) as HTMLInputElement | null
      )?.value.trim() ?? '';
    const number = (name: string): number | undefined => {
      const text = value(name);
      return text === '' ? undefined : Number(text);
    };
    const options: Record<string, unknown> = {};
    const put = (key: string, v: unknown) => {
      if (v !== undefined && v !== '' && !(Array.isArray(v) && !v.length)) {
        options[key] = v;
      }
    };
    const mode = this.mode();
    if (mode === 'preset') {
      put('preset', value('preset'));
    } else {
      put('partition', value('partition'));
      put('memory', value('memory'));
      put('gpus', number('gpus'));
      put('reservation', value('reservation'));
    }
    put('cores', number('cores'));
    put('tasks', number('tasks'));
    put('runtime', value('runtime'));
    put('account', value('account'));
    const modules = form.querySelector(
      'select[name="modules"]'
    ) as HTMLSelectElement | null;
    if (modules) {
      put(
        'modules',
        Array.from(modules.selectedOptions).map(option => option.value)
      );
    }
    const body: IKernelRequest = {
      template: this.template.name,
      name: value('name'),
      display_name: value('display_name'),
      options
    };
    if (this.template.needs_environment) {
      body.environment = value('environment');
    }
    return body;
  }

  /** Show the server's refusal next to its field (or at the top); clear the other slots. */
  showError(field: string | null, message: string): void {
    for (const slot of Array.from(
      this.node.querySelectorAll<HTMLElement>('.dkrz-field-error')
    )) {
      slot.textContent = '';
      slot.hidden = true;
    }
    const known =
      field &&
      FIELDS.includes(field) &&
      this.node.querySelector(`.dkrz-field-error[data-field="${field}"]`);
    showFieldError(this.node, known ? field! : '', message);
    const control = known
      ? this.node.querySelector<HTMLElement>(`[name="${field}"]`)
      : null;
    control?.focus();
  }

  private mode(): 'preset' | 'partition' {
    const checked = this.node.querySelector(
      'input[name="mode"]:checked'
    ) as HTMLInputElement | null;
    return checked?.value === 'partition' ? 'partition' : 'preset';
  }

  /** Enable the fields of the chosen kind of request, disable the others. */
  private syncMode(): void {
    const preset = this.mode() === 'preset';
    this.setEnabled('preset', preset);
    for (const name of ['partition', 'memory', 'gpus', 'reservation']) {
      this.setEnabled(name, !preset);
    }
  }

  private setEnabled(name: string, enabled: boolean): void {
    const control = this.node.querySelector(`[name="${name}"]`) as
      | HTMLInputElement
      | HTMLSelectElement
      | null;
    if (control) {
      control.disabled = !enabled;
      control.closest('.dkrz-field')?.classList.toggle('dkrz-mod-off', !enabled);
    }
  }

  private build(): HTMLElement {
    const { offer, template } = this;
    const old = this.existing;
    const options = (old?.options ?? template.options ?? {}) as Record<string, unknown>;
    const startAdvanced =
      offer.advanced && options.partition !== undefined && !options.preset;
    const form = h('form', { class: 'dkrz-form', autocomplete: 'off' });
    form.addEventListener('submit', event => event.preventDefault());
    form.append(
      h('p', { class: 'dkrz-template' }, template.description || ''),
      errorSlot(''),
      field(
        'name',
        'Kernel name',
        (() => {
          const node = input('name', old?.name ?? '', 'text', 'my-kernel');
          node.readOnly = !!old;
          return node;
        })(),
        old ? 'A kernel keeps its name; remove it and create a new one to rename.' : 'Lower-case letters, digits, "-" and "_".'
      ),
      field(
        'display_name',
        'Display name',
        input('display_name', old?.display_name ?? '', 'text', template.display_name)
      )
    );
    const radios = h(
      'fieldset',
      { class: 'dkrz-mode' },
      h('legend', {}, 'Request'),
      h(
        'label',
        {},
        h('input', {
          type: 'radio',
          name: 'mode',
          value: 'preset',
          checked: !startAdvanced
        }),
        ' Preset'
      ),
      offer.advanced
        ? h(
            'label',
            {},
            h('input', {
              type: 'radio',
              name: 'mode',
              value: 'partition',
              checked: startAdvanced
            }),
            ' Partition (advanced)'
          )
        : null
    );
    radios.addEventListener('change', () => this.syncMode());
    form.append(radios);
    form.append(
      field(
        'preset',
        'Preset',
        select(
          'preset',
          offer.presets.map(p => ({
            value: p.name,
            label: `${p.display_name || p.name} (${p.partition}, cores ${p.cores.join('/')})`
          })),
          String(options.preset ?? offer.presets[0]?.name ?? '')
        )
      )
    );
    if (offer.advanced) {
      form.append(
        field(
          'partition',
          'Partition',
          select(
            'partition',
            offer.partitions.map(p => ({
              value: p.name,
              label: p.display_name || p.name
            })),
            String(options.partition ?? offer.partitions[0]?.name ?? '')
          )
        )
      );
    }
    form.append(
      field(
        'account',
        'Account',
        select(
          'account',
          [
            { value: '', label: 'Slurm\'s default' },
            ...offer.accounts.map(a => ({ value: a, label: a }))
          ],
          String(options.account ?? offer.default_account ?? '')
        )
      ),
      h(
        'div',
        { class: 'dkrz-row' },
        field('cores', 'Cores', input('cores', options.cores, 'number')),
        field('tasks', 'Tasks', input('tasks', options.tasks, 'number'), 'For srun (MPI)')
      )
    );
    if (offer.advanced) {
      form.append(
        h(
          'div',
          { class: 'dkrz-row' },
          field('memory', 'Memory', input('memory', options.memory, 'text', '8G')),
          field('gpus', 'GPUs', input('gpus', options.gpus, 'number'))
        ),
        field(
          'reservation',
          'Reservation',
          select(
            'reservation',
            [
              { value: '', label: 'none' },
              ...offer.reservations.map(r => ({ value: r, label: r }))
            ],
            String(options.reservation ?? '')
          )
        )
      );
    }
    form.append(
      field('runtime', 'Runtime', input('runtime', options.runtime, 'text', 'HH:MM:SS'))
    );
    if (offer.modules && offer.modules.length) {
      form.append(this.modulesField(offer.modules, (options.modules as string[]) ?? []));
    }
    if (template.needs_environment) {
      form.append(
        field(
          'environment',
          'Environment',
          select(
            'environment',
            offer.environments.map(e => ({
              value: e.path,
              label: `${e.name} (${e.kind}, ${e.path})`
            })),
            old?.environment ?? offer.environments[0]?.path ?? ''
          ),
          offer.environments.length
            ? ''
            : 'No conda environment or virtualenv found in your home directory.'
        )
      );
    }
    for (const error of offer.errors ?? []) {
      form.append(h('div', { class: 'dkrz-hint dkrz-offer-error' }, error));
    }
    return form;
  }

  /** The modules: a search box that filters a multi-select (hidden options stay selected). */
  private modulesField(modules: string[], chosen: string[]): HTMLElement {
    const list = h('select', { name: 'modules', multiple: true, size: '6' });
    for (const name of modules) {
      list.append(
        h('option', { value: name, selected: chosen.includes(name) }, name)
      );
    }
    const search = h('input', {
      type: 'search',
      name: 'module-search',
      class: 'dkrz-module-search',
      placeholder: 'Search modules',
      'aria-label': 'Search modules'
    });
    search.addEventListener('input', () => {
      const needle = search.value.trim().toLowerCase();
      for (const option of Array.from(list.options)) {
        option.hidden = !!needle && !option.value.toLowerCase().includes(needle);
      }
    });
    const node = field('modules', 'Modules', list, 'Ctrl-click to choose several.');
    node.insertBefore(search, list);
    return node;
  }
}

/**
 * Open the kernel dialog for `template` (new) or `existing` (edit); resolves true once the server took it.
 * The dialog stays open on a refusal, with the message next to the field.
 */
export async function openKernelDialog(
  template: ITemplate,
  offer: IOffer,
  existing: IUserKernel | null,
  onSaved: () => Promise<void>
): Promise<boolean> {
  const body = new KernelForm(template, offer, existing);
  const submit = async (): Promise<boolean> => {
    const request = body.request();
    try {
      if (existing) {
        await sendJSON(`kernels/${encodeURIComponent(existing.name)}`, 'PUT', request);
      } else {
        await sendJSON('kernels', 'POST', request);
      }
    } catch (error) {
      if (error instanceof ApiError && error.status === 400) {
        body.showError(error.field, error.message);
      } else {
        body.showError(null, (error as Error).message);
      }
      return false;
    }
    await onSaved();
    return true;
  };
  const dialog = new SubmitDialog<void>(
    {
      title: existing
        ? `Edit ${existing.display_name}`
        : `New kernel: ${template.display_name}`,
      body,
      buttons: [
        Dialog.cancelButton(),
        Dialog.okButton({ label: existing ? 'Save' : 'Create' })
      ],
      focusNodeSelector: existing ? 'input[name="display_name"]' : 'input[name="name"]'
    },
    submit
  );
  dialog.addClass('dkrz-dialog');
  const result = await dialog.launch();
  return result.button.accept;
}

/** The body of the "Register an environment" dialog. */
class EnvironmentForm extends Widget {
  constructor(offer: IOffer) {
    super();
    this.addClass('dkrz-environment-dialog');
    const known = h('datalist', { id: `dkrz-envs-${Private.next++}` });
    for (const env of offer.environments) {
      known.append(h('option', { value: env.path }, `${env.name} (${env.kind})`));
    }
    const path = input('path', '', 'text', '/home/you/venvs/x');
    path.setAttribute('list', known.id);
    this.node.append(
      h(
        'form',
        { class: 'dkrz-form', autocomplete: 'off' },
        h('p', {}, 'Run an own conda environment or virtualenv as a local kernel (like dkrz-kernel register-env).'),
        errorSlot(''),
        field('path', 'Environment path', path),
        known,
        field('name', 'Kernel name', input('name', '', 'text', 'my-env')),
        field('display_name', 'Display name', input('display_name', ''))
      )
    );
  }

  /** What POST api/environments is sent. */
  request(): { path: string; name: string; display_name: string } {
    const value = (name: string) =>
      (this.node.querySelector(`[name="${name}"]`) as HTMLInputElement).value.trim();
    return { path: value('path'), name: value('name'), display_name: value('display_name') };
  }

  /** The server's refusal next to its field. */
  showError(field: string | null, message: string): void {
    for (const slot of Array.from(this.node.querySelectorAll<HTMLElement>('.dkrz-field-error'))) {
      slot.textContent = '';
      slot.hidden = true;
    }
    const known =
      field && this.node.querySelector(`.dkrz-field-error[data-field="${field}"]`);
    showFieldError(this.node, known ? field! : '', message);
  }
}

/** Open the "Register an environment" dialog; resolves true once registered. */
export async function openEnvironmentDialog(
  offer: IOffer,
  onSaved: () => Promise<void>
): Promise<boolean> {
  const body = new EnvironmentForm(offer);
  const submit = async (): Promise<boolean> => {
    try {
      await sendJSON('environments', 'POST', body.request());
    } catch (error) {
      const apiError = error instanceof ApiError ? error : null;
      body.showError(apiError?.field ?? null, (error as Error).message);
      return false;
    }
    await onSaved();
    return true;
  };
  const dialog = new SubmitDialog<void>(
    {
      title: 'Register an environment',
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Register' })],
      focusNodeSelector: 'input[name="path"]'
    },
    submit
  );
  dialog.addClass('dkrz-dialog');
  const result = await dialog.launch();
  return result.button.accept;
}

/** Report a failed request that has no form to show it in. */
export function reportFailure(title: string, error: unknown): void {
  void showErrorMessage(title, (error as Error).message ?? String(error));
}

namespace Private {
  export let next = 0;
}
