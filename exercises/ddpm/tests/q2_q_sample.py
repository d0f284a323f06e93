from otter.test_files import test_case

OK_FORMAT = False

name = "q2_q_sample"
points = 1

@test_case(points=None, hidden=False)
def test_endpoints(q_sample):
    import torch
    from course_lib.grading import assert_close
    g = torch.Generator().manual_seed(0)
    x0, noise = (torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g))
    alpha_bar = torch.tensor([1.0, 0.25, 0.0], dtype=torch.float64)
    out = q_sample(x0, torch.tensor([0, 1, 2]), alpha_bar, noise)
    expected = torch.stack([x0[0], 0.5 * x0[1] + 0.75 ** 0.5 * noise[1], noise[2]])
    assert_close(out, expected, 'q_sample with alpha_bar = [1, 0.25, 0] and t = [0, 1, 2]')

@test_case(points=0, hidden=False)
def test_image_shape_and_dtype(q_sample):
    import torch
    from course_lib.grading import assert_tensor
    from course_lib.schedules import get_schedule
    x0, noise = (torch.zeros(4, 1, 8, 8), torch.ones(4, 1, 8, 8))
    out = q_sample(x0, torch.tensor([0, 10, 500, 999]), get_schedule('linear').alpha_bar, noise)
    assert_tensor(out, 'q_sample on images [4, 1, 8, 8]', (4, 1, 8, 8))
    assert out.dtype == torch.float32, f"q_sample should keep x0's dtype (float32), got {out.dtype}."

