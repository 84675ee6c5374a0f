import importlib.util as _u
_s = _u.spec_from_file_location('_sandbox_inventory', '/work/wt/i9-supply/inventories/sandbox.py')
_m = _u.module_from_spec(_s)
_s.loader.exec_module(_m)
_over = {'ai_models': [{'pipeline': 'image-to-text', 'model_id': 'LPFLEET-sandbox/Tiny-Model'}, {'pipeline': 'image-to-text', 'model_id': 'nobody/not-on-the-hub'}, {'pipeline': 'llm', 'model_id': 'meta-llama/Meta-Llama-3.1-8B-Instruct'}]}
def _with(hosts):
    return [(n, {**d, 'models_lock': '/tmp/pytest-of-root/pytest-128/test_lock_refuses_bad_models_b0/bad.lock', **_over}) for n, d in hosts]
sandbox_consumer = _with(_m.sandbox_consumer)
sandbox_datacenter = _with(_m.sandbox_datacenter)
sandbox = sandbox_consumer + sandbox_datacenter
