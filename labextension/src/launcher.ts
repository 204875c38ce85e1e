/**
 * The launcher's "Slurm kernels" section: a card per template (a new kernel from it), "Manage Slurm
 * kernels" (edit or remove the user's own) and "Register an environment".
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { addIcon, editIcon, LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { IOffer, ITemplate, IUserKernel, requestAPI } from './api';
import { h } from './dom';
import {
  openEnvironmentDialog,
  openKernelDialog,
  reportFailure
} from './kerneldialog';

/** The launcher category of the section. */
export const CATEGORY = 'Slurm kernels';

/** The command ids (stable: a site or a test may call them). */
export const CommandIDs = {
  create: 'dkrzspawner:create-slurm-kernel',
  manage: 'dkrzspawner:manage-slurm-kernels',
  registerEnvironment: 'dkrzspawner:register-environment'
};

/** Add the commands and the cards; the templates come from the server. */
export async function setupLauncher(
  app: JupyterFrontEnd,
  launcher: ILauncher,
  icon: LabIcon
): Promise<void> {
  const { templates } = await requestAPI<{ templates: ITemplate[] }>('templates');
  const byName = new Map(templates.map(t => [t.name, t]));
  const refresh = () => app.serviceManager.kernelspecs.refreshSpecs();
  const offer = () => requestAPI<IOffer>('offer');

  app.commands.addCommand(CommandIDs.create, {
    label: args => String(args.label ?? 'New Slurm kernel'),
    caption: args => String(args.caption ?? ''),
    icon: addIcon,
    execute: async args => {
      const template = byName.get(String(args.template));
      if (!template) {
        return;
      }
      try {
        await openKernelDialog(template, await offer(), null, refresh);
      } catch (error) {
        reportFailure('The Slurm kernel dialog could not open', error);
      }
    }
  });
  app.commands.addCommand(CommandIDs.manage, {
    label: 'Manage Slurm kernels',
    caption: 'Edit or remove your Slurm kernels',
    icon: editIcon,
    execute: () => manageKernels(byName, offer, refresh)
  });
  app.commands.addCommand(CommandIDs.registerEnvironment, {
    label: 'Register an environment',
    caption: 'Your own conda environment or virtualenv as a kernel',
    icon,
    execute: async () => {
      try {
        await openEnvironmentDialog(await offer(), refresh);
      } catch (error) {
        reportFailure('The environment dialog could not open', error);
      }
    }
  });

  templates.forEach((template, rank) =>
    launcher.add({
      command: CommandIDs.create,
      category: CATEGORY,
      rank,
      args: {
        template: template.name,
        label: template.display_name,
        caption: template.description
      }
    })
  );
  launcher.add({ command: CommandIDs.manage, category: CATEGORY, rank: 1000 });
  launcher.add({
    command: CommandIDs.registerEnvironment,
    category: CATEGORY,
    rank: 1001
  });
}

/** The dialog that lists the user's kernels, with Edit and Remove for the Slurm ones. */
async function manageKernels(
  templates: Map<string, ITemplate>,
  offer: () => Promise<IOffer>,
  refresh: () => Promise<void>
): Promise<void> {
  let kernels: IUserKernel[];
  try {
    kernels = (await requestAPI<{ kernels: IUserKernel[] }>('kernels')).kernels;
  } catch (error) {
    reportFailure('Your kernels could not be listed', error);
    return;
  }
  let action: (() => Promise<void>) | null = null;
  const list = h('ul', { class: 'dkrz-kernel-list' });
  for (const kernel of kernels) {
    const template = kernel.template ? templates.get(kernel.template) : undefined;
    const edit = h(
      'button',
      {
        class: 'jp-mod-styled jp-mod-accept dkrz-edit',
        type: 'button',
        disabled: !(kernel.slurm && template),
        'aria-label': `Edit ${kernel.display_name}`
      },
      'Edit'
    );
    const remove = h(
      'button',
      {
        class: 'jp-mod-styled jp-mod-warn dkrz-remove',
        type: 'button',
        'aria-label': `Remove ${kernel.display_name}`
      },
      'Remove'
    );
    edit.addEventListener('click', () => {
      action = async () => {
        await openKernelDialog(template!, await offer(), kernel, refresh);
      };
      dialog.resolve(0);
    });
    remove.addEventListener('click', () => {
      action = () => removeKernel(kernel, refresh);
      dialog.resolve(0);
    });
    list.append(
      h(
        'li',
        { class: 'dkrz-kernel', 'data-kernel': kernel.name },
        h(
          'span',
          { class: 'dkrz-kernel-name' },
          h('strong', {}, kernel.display_name),
          ` ${kernel.name}${kernel.slurm ? ` (${kernel.template ?? 'Slurm'})` : ' (local)'}`
        ),
        edit,
        remove
      )
    );
  }
  const body = new Widget({
    node: h(
      'div',
      { class: 'dkrz-manage-dialog' },
      kernels.length ? list : h('p', {}, 'You have no kernels of your own yet.')
    )
  });
  const dialog = new Dialog({
    title: 'Your kernels',
    body,
    buttons: [Dialog.okButton({ label: 'Close' })]
  });
  await dialog.launch();
  if (action) {
    await (action as () => Promise<void>)();
  }
}

/** Remove a kernel after a confirmation. */
async function removeKernel(
  kernel: IUserKernel,
  refresh: () => Promise<void>
): Promise<void> {
  const answer = await showDialog({
    title: 'Remove kernel',
    body: `Remove the kernel "${kernel.display_name}" (${kernel.name})? Notebooks that use it then ask for another kernel.`,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Remove' })]
  });
  if (!answer.button.accept) {
    return;
  }
  try {
    await requestAPI(`kernels/${encodeURIComponent(kernel.name)}`, {
      method: 'DELETE'
    });
  } catch (error) {
    reportFailure('The kernel could not be removed', error);
    return;
  }
  await refresh();
}
