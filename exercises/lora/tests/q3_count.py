from otter.test_files import test_case

OK_FORMAT = False

name = "q3_count"
points = 3

@test_case(points=None, hidden=False)
def test_by_hand(lora_parameter_count, lora_fraction):
    import math
    layers = {'attn.to_q': (4, 6), 'attn.to_k': (4, 6), 'attn.to_kv': (4, 12), 'attn.to_out.0': (6, 4), 'proj': (4, 3)}
    got = lora_parameter_count(layers, ['to_k', 'to_out.0'], 2)
    assert isinstance(got, int) and (not isinstance(got, bool)), f'lora_parameter_count should return a Python int, got {type(got).__name__}.'
    assert got == 40, f"lora_parameter_count on attn.to_k (4 -> 6) and attn.to_out.0 (6 -> 4) at rank 2 is {got}, expected 2 (4 + 6) + 2 (6 + 4) = 40 (attn.to_kv is not targeted by 'to_k')."
    got = lora_parameter_count(layers, ['to_q', 'proj'], 3)
    assert got == 51, f'lora_parameter_count on attn.to_q (4 -> 6) and proj (4 -> 3) at rank 3 is {got}, expected 3 (4 + 6) + 3 (4 + 3) = 51.'
    got = lora_fraction(layers, 157, ['to_k', 'to_out.0'], 2)
    assert isinstance(got, float) and math.isclose(got, 40 / 197, rel_tol=1e-09), f'lora_fraction for the 40 LoRA parameters of a 157-parameter model is {got!r}, expected 40 / (157 + 40) = {40 / 197:.4f}: the total is counted after the LoRA layers are added.'

