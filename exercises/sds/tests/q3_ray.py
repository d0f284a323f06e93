from otter.test_files import test_case

OK_FORMAT = False

name = "q3_ray"
points = 4

@test_case(points=None, hidden=False)
def test_weights_by_hand(ray_weights):
    import math
    import torch
    from course_lib.grading import assert_close
    got = ray_weights(torch.tensor([0.0, math.log(2), math.log(2)]), torch.ones(3))
    assert_close(got, torch.tensor([0.0, 0.5, 0.25]), 'ray_weights with sigma = (0, ln 2, ln 2), delta = (1, 1, 1) (T_i counts the segments before sample i only)', atol=1e-06)
    got = ray_weights(torch.tensor([1.0, 1.0]), torch.tensor([0.5, 2.0]))
    expected = torch.tensor([1 - math.exp(-0.5), math.exp(-0.5) * (1 - math.exp(-2.0))])
    assert_close(got, expected, 'ray_weights with sigma = (1, 1), delta = (0.5, 2) (the optical depth of a segment is sigma_i delta_i)', atol=1e-06)

@test_case(points=None, hidden=False)
def test_colour_by_hand(ray_colour):
    import math
    import torch
    from course_lib.grading import assert_close
    rgb = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    got = ray_colour(torch.tensor([0.0, math.log(2), math.log(2)]), torch.ones(3), rgb, -torch.ones(3))
    assert_close(got, torch.tensor([0.25, -0.25, 0.0]), 'ray_colour with sigma = (0, ln 2, ln 2), delta = 1, colours (1, 1, 1), (1, 0, 0), (0, 0, 1) on a black background (-1, -1, -1) (the background shows where the ray is not absorbed)', atol=1e-06)
    got = ray_colour(torch.tensor([100.0, 3.0]), torch.ones(2), rgb[1:], torch.ones(3))
    assert_close(got, torch.tensor([1.0, 0.0, 0.0]), 'ray_colour of an opaque red first sample in front of a blue one (the first hides the rest)', atol=1e-05)

