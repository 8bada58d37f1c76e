"""A stand-in for ComfyUI's folder_paths module, with the behaviour the pack relies on
(ComfyUI 0.17: new names get an empty extension set; is_default puts a path first)."""
import os

models_dir = os.path.join(os.environ.get("FAKE_COMFYUI_DIR", "."), "models")
folder_names_and_paths = {}


def add_model_folder_path(folder_name, full_folder_path, is_default=False):
    if folder_name not in folder_names_and_paths:
        folder_names_and_paths[folder_name] = ([full_folder_path], set())
        return
    paths = folder_names_and_paths[folder_name][0]
    if full_folder_path in paths:
        paths.remove(full_folder_path)
    if is_default:
        paths.insert(0, full_folder_path)
    else:
        paths.append(full_folder_path)


def get_folder_paths(folder_name):
    return folder_names_and_paths[folder_name][0][:]
