"""Tests of course_lib.render (volume rendering, cameras) and course_lib.raster (soft vector rasteriser):
identities of the compositing, exact background and occlusion cases, mirror symmetries of the cameras,
gradients, SVG output, and the errors for bad input."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import torch

from course_lib import raster, render


def _random_field(resolution: int = 8, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    density = 3.0 * torch.rand(resolution, resolution, resolution, generator=g, dtype=dtype)
    colour = 2.0 * torch.rand(3, resolution, resolution, resolution, generator=g, dtype=dtype) - 1.0
    return torch.cat([density[None], colour])


# --- compositing ----------------------------------------------------------------------------------------


def test_weights_are_nonnegative_and_sum_to_the_opacity():
    g = torch.Generator().manual_seed(0)
    sigma = torch.rand(50, 20, generator=g, dtype=torch.float64) * torch.tensor([0.0, 1.0, 100.0]).repeat(50, 7)[:, :20]
    deltas = torch.rand(50, 20, generator=g, dtype=torch.float64)
    w = render.compositing_weights(sigma, deltas)
    assert (w >= 0).all() and (w.sum(1) <= 1 + 1e-12).all()  # <= 1 up to rounding
    torch.testing.assert_close(w.sum(1), 1 - torch.exp(-(sigma * deltas).sum(1)))  # telescoping sum of T_i alpha_i


def test_an_opaque_first_segment_hides_everything_behind_it():
    sigma = torch.tensor([[1e4, 5.0, 7.0], [1e4, 0.0, 1e4]])
    w = render.compositing_weights(sigma, torch.full_like(sigma, 0.5))
    assert torch.equal(w, torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))


def test_render_rays_of_an_opaque_field_show_the_first_sample():
    field = _random_field(8)
    field[0] = 1e4  # opaque everywhere inside the cube
    origins = torch.tensor([[0.0, 0.0, 3.5], [0.3, -0.2, 3.5]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    near, far, samples = 2.5, 4.5, 16  # the ray enters the cube at t = 2.5
    rgb, opacity = render.render_rays(field, origins, directions, near, far, samples, background=0.3)
    first = origins + (near + 0.5 * (far - near) / samples) * directions
    torch.testing.assert_close(rgb, render.sample_field(field, first)[1])
    torch.testing.assert_close(opacity, torch.ones(2))


@pytest.mark.parametrize("jitter", [False, True])
def test_an_empty_field_renders_exactly_the_background(jitter):
    field = _random_field(6)
    field[0] = 0.0
    background = torch.tensor([0.2, -0.5, 1.0])
    generator = torch.Generator().manual_seed(1) if jitter else None
    images = render.render_views(field, [0.0, 120.0], [10.0, -5.0], size=5, background=background, generator=generator)
    assert torch.equal(images, background.view(1, 3, 1, 1).expand(2, 3, 5, 5))


def test_density_outside_the_cube_is_zero_and_trilinear_inside():
    field = _random_field(5)
    sigma, _ = render.sample_field(field, torch.tensor([[1.01, 0.0, 0.0], [0.0, -1.2, 0.5], [0.0, 0.0, 3.0]]))
    assert torch.equal(sigma, torch.zeros(3))
    points = render.grid_points(5)  # voxel points return the voxels themselves (align_corners=True)
    sigma, rgb = render.sample_field(field, points)
    torch.testing.assert_close(sigma, field[0])
    torch.testing.assert_close(rgb, field[1:].permute(1, 2, 3, 0))


def test_renders_are_differentiable_in_the_field():
    field = (
        _random_field(4, dtype=torch.float64)
        .add(torch.tensor([0.5, 0, 0, 0], dtype=torch.float64).view(4, 1, 1, 1))
        .requires_grad_()
    )
    fn = lambda f: render.render_views(f, [30.0], [20.0], radius=3.0, size=2, fov_deg=50.0, num_samples=8)
    assert torch.autograd.gradcheck(fn, (field,))
    fn(field).sum().backward()
    assert field.grad[0].abs().sum() > 0 and field.grad[1:].abs().sum() > 0


def test_stratified_jitter_is_deterministic_given_the_generator():
    field = _random_field(8)
    a = render.render_views(field, [10.0], [5.0], size=4, generator=torch.Generator().manual_seed(3))
    b = render.render_views(field, [10.0], [5.0], size=4, generator=torch.Generator().manual_seed(3))
    c = render.render_views(field, [10.0], [5.0], size=4)
    assert torch.equal(a, b) and not torch.equal(a, c)


# --- cameras ---------------------------------------------------------------------------------------------


def test_camera_rays_start_on_the_sphere_and_look_at_the_origin():
    origins, directions = render.camera_rays(37.0, 25.0, radius=4.0, size=6, fov_deg=30.0, dtype=torch.float64)
    assert origins.shape == directions.shape == (36, 3)
    torch.testing.assert_close(origins.norm(dim=1), torch.full((36,), 4.0, dtype=torch.float64))
    torch.testing.assert_close(directions.norm(dim=1), torch.ones(36, dtype=torch.float64))
    mean = directions.mean(0)  # pixel centres are symmetric about the optical axis
    torch.testing.assert_close(mean / mean.norm(), -origins[0] / 4.0)


def test_image_axes_follow_the_convention():
    """+y is up in the image, and at azimuth 0 (front, camera on +z) +x is to the right; at +90 +x is in front."""
    points = render.grid_points(9)
    colour = torch.zeros(3, 9, 9, 9)
    top = torch.cat([(points[..., 1] > 0).float()[None] * 20.0, colour])
    right = torch.cat([(points[..., 0] > 0).float()[None] * 20.0, colour])
    view = dict(size=8, fov_deg=30.0, background=1.0)  # the front face fills the image
    image = render.render_views(top, [0.0], [0.0], **view)[0, 0]
    assert (image[:4] < 0.5).all() and (image[4:] == 1.0).all()  # dark rows at the top only
    image = render.render_views(right, [0.0], [0.0], **view)[0, 0]
    assert (image[:, 4:] < 0.5).all() and (image[:, :4] == 1.0).all()  # dark columns on the right only
    image = render.render_views(right, [90.0], [0.0], **view)[0, 0]
    assert (image < 0.5).all()  # seen head-on from the +x side


def test_back_and_side_views_are_mirror_images_of_the_mirrored_field():
    field = _random_field(8, seed=2)
    kwargs = dict(size=8, num_samples=24)
    back = render.render_views(field, [180.0], [15.0], **kwargs)
    front_of_mirror = render.render_views(field.flip(1), [0.0], [15.0], **kwargs)  # z -> -z
    torch.testing.assert_close(back, front_of_mirror.flip(-1), atol=1e-5, rtol=1e-5)
    left = render.render_views(field, [90.0], [-5.0], **kwargs)
    right_of_mirror = render.render_views(field.flip(3), [-90.0], [-5.0], **kwargs)  # x -> -x
    torch.testing.assert_close(left, right_of_mirror.flip(-1), atol=1e-5, rtol=1e-5)
    front = render.render_views(field, [0.0], [15.0], **kwargs)
    assert (front - back).abs().max() > 0.1  # an asymmetric field looks different from behind


@pytest.mark.parametrize(
    "azimuth,elevation,label",
    [
        (0.0, 0.0, "front"),
        (44.9, 0.0, "front"),
        (-44.9, 30.0, "front"),
        (45.0, 0.0, "side"),
        (-45.0, 0.0, "side"),
        (134.9, 0.0, "side"),
        (-90.0, 60.0, "side"),
        (135.0, 0.0, "back"),
        (-135.0, 0.0, "back"),
        (180.0, 0.0, "back"),
        (-180.0, 0.0, "back"),
        (360.0, 0.0, "front"),
        (225.0, 0.0, "back"),
        (-270.0, 0.0, "side"),
        (0.0, 60.1, "overhead"),
        (180.0, 80.0, "overhead"),
    ],
)
def test_view_label_boundaries(azimuth, elevation, label):
    assert render.view_label(azimuth, elevation) == label


def test_sample_cameras_ranges_and_determinism():
    az, el = render.sample_cameras(2000, torch.Generator().manual_seed(0), elevation_range=(-10.0, 80.0))
    assert az.shape == el.shape == (2000,) and az.dtype == torch.float32
    assert az.min() >= -180 and az.max() < 180 and el.min() >= -10 and el.max() <= 80
    assert az.min() < -170 and az.max() > 170
    again, _ = render.sample_cameras(2000, torch.Generator().manual_seed(0))
    assert torch.equal(az, again)


def test_density_blob_is_magic3d_init():
    blob = render.density_blob(9, lam=10.0, c=0.5)
    assert blob.shape == (9, 9, 9) and (blob >= 0).all()
    assert blob[4, 4, 4] == 10.0  # the centre voxel
    radius = render.grid_points(9).norm(dim=-1)
    assert (blob[radius >= 0.5] == 0).all()
    torch.testing.assert_close(blob[radius < 0.5], 10.0 * (1 - radius[radius < 0.5] / 0.5))


def test_voxel_field_starts_as_the_blob_in_grey_and_stays_valid_under_any_step():
    model = render.VoxelField(9)
    field = model()
    assert field.shape == (4, 9, 9, 9) and model.resolution == 9
    torch.testing.assert_close(field[0], render.density_blob(9).clamp(min=1e-4), rtol=1e-5, atol=1e-6)
    assert (field[1:] == 0).all()
    images = render.render_views(field, [0.0, 90.0], [10.0, 30.0], size=8)
    images.square().sum().backward()  # gradients reach both raw tensors through the renderer
    assert model.density_raw.grad.abs().sum() > 0 and model.colour_raw.grad.abs().sum() > 0
    with torch.no_grad():  # a huge step in any direction still gives a valid field
        for p in model.parameters():
            p.add_(1e4 * torch.randn_like(p))
    render.check_field(model())
    assert model()[1:].abs().max() <= 1.0


def test_view_prompt_appends_the_view_word_of_the_camera_as_the_captions_do():
    from course_lib.shapes3d import caption3d

    for azimuth, elevation in [(0.0, 10.0), (100.0, 0.0), (-170.0, 20.0), (30.0, 70.0)]:
        view = render.VIEWS.index(render.view_label(azimuth, elevation))
        assert render.view_prompt(" a red cube ", azimuth, elevation) == caption3d(1, 0, view)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda f: render.view_prompt("", 0.0, 0.0), "non-empty string"),
        (lambda f: render.view_prompt("a red cube", 0.0, 95.0), "elevation"),
        (lambda f: render.render_views(f[:, :, :, :3], [0.0], [0.0]), "cubic"),
        (lambda f: render.render_views(f[:3], [0.0], [0.0]), r"\[4, R, R, R\]"),
        (lambda f: render.render_views(f - 5.0, [0.0], [0.0]), "softplus"),
        (lambda f: render.render_views(f, [0.0], [0.0], radius=0.0), "radius"),
        (lambda f: render.render_views(f, [0.0], [0.0], radius=-2.0), "radius"),
        (lambda f: render.render_views(f, [0.0], [0.0], radius=1.0), "outside"),
        (lambda f: render.render_views(f, [0.0], [0.0], fov_deg=0.0), "fov_deg"),
        (lambda f: render.render_views(f, [0.0], [0.0], fov_deg=180.0), "fov_deg"),
        (lambda f: render.render_views(f, [0.0], [0.0], size=0), "size"),
        (lambda f: render.render_views(f, [0.0], [90.0]), "elevation"),
        (lambda f: render.render_views(f, [0.0, 90.0], [0.0]), "same length"),
        (lambda f: render.render_views(f, [], []), "non-empty"),
        (lambda f: render.render_views(f, [0.0], [0.0], background=2.0), "background"),
        (lambda f: render.render_views(f, [0.0], [0.0], num_samples=0), "num_samples"),
        (lambda f: render.render_rays(f, torch.zeros(2, 3), torch.ones(2, 3), 3.0, 3.0), "smaller than far"),
        (lambda f: render.render_rays(f, torch.zeros(2, 3), torch.ones(2, 3), 4.0, 2.0), "smaller than far"),
        (lambda f: render.render_rays(f, torch.zeros(2, 3), torch.ones(3, 3), 1.0, 2.0), r"\[N, 3\]"),
        (lambda f: render.compositing_weights(torch.ones(2, 3), torch.ones(2, 4)), "deltas"),
        (lambda f: render.sample_cameras(4, elevation_range=(0.0, 90.0)), "elevation_range"),
        (lambda f: render.density_blob(1), "resolution"),
        (lambda f: render.view_label(float("nan"), 0.0), "azimuth_deg"),
    ],
)
def test_bad_input_raises_a_helpful_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call(_random_field(4))


# --- the soft vector rasteriser ---------------------------------------------------------------------------

RED, GREEN = torch.tensor([1.0, -1.0, -1.0]), torch.tensor([-1.0, 1.0, -1.0])


def _scene(dtype=torch.float32):
    circles = raster.Circles(
        torch.tensor([[0.5, 0.5], [0.6, 0.4]], dtype=dtype),
        torch.tensor([0.2, 0.15], dtype=dtype),
        torch.stack([RED, GREEN]).to(dtype),
    )
    # a convex quadrilateral whose diagonals miss the pixel centres (the distance's min over edges has no ties)
    quad = raster.Polygons(
        torch.tensor([[[0.13, 0.62], [0.41, 0.57], [0.37, 0.93], [0.09, 0.85]]], dtype=dtype),
        torch.tensor([[-1.0, -1.0, 1.0]], dtype=dtype),
    )
    return circles, quad


def test_circle_centre_has_its_colour_and_far_pixels_the_background():
    circle = raster.Circles(torch.tensor([[0.5, 0.5]]), torch.tensor([0.2]), RED[None])
    image = raster.rasterise(circle, size=33, softness=0.5, background=0.25)  # pixel 16 is centred at 0.5
    assert image.shape == (3, 33, 33)
    torch.testing.assert_close(image[:, 16, 16], RED, atol=1e-4, rtol=0)
    torch.testing.assert_close(image[:, 0, 0], torch.full((3,), 0.25), atol=1e-4, rtol=0)
    torch.testing.assert_close(image[:, 16, 16 + 12], torch.full((3,), 0.25), atol=1e-4, rtol=0)  # 5 px out


def test_polygon_covers_its_inside_for_either_winding_and_later_layers_paint_over():
    circles, square = _scene()
    image = raster.rasterise(circles, square, size=40)
    torch.testing.assert_close(image[:, 30, 10], square.colour[0], atol=1e-3, rtol=0)  # (0.26, 0.76) inside
    reversed_square = raster.Polygons(square.vertices.flip(1), square.colour)
    torch.testing.assert_close(raster.rasterise(circles, reversed_square, size=40), image)
    # the green circle is drawn after the red one, so their overlap is green
    torch.testing.assert_close(image[:, 15, 23], GREEN, atol=1e-3, rtol=0)  # (0.59, 0.39): in both circles
    red_on_top = raster.rasterise(
        raster.Circles(circles.centre.flip(0), circles.radius.flip(0), circles.colour.flip(0)), size=40
    )
    assert red_on_top[0, 15, 23] > 0.9  # 2.3 pixels inside the red circle


def test_batched_layers_equal_the_stack_of_single_images():
    circles, square = _scene()
    batched = [
        raster.Circles(
            torch.stack([circles.centre, circles.centre + 0.1]),
            circles.radius.repeat(2, 1),
            circles.colour.repeat(2, 1, 1),
        ),
        raster.Polygons(square.vertices.repeat(2, 1, 1, 1), square.colour.repeat(2, 1, 1)),
    ]
    images = raster.rasterise(*batched, size=16)
    assert images.shape == (2, 3, 16, 16)
    shifted = raster.Circles(circles.centre + 0.1, circles.radius, circles.colour)
    torch.testing.assert_close(
        images, torch.stack([raster.rasterise(circles, square, size=16), raster.rasterise(shifted, square, size=16)])
    )


def test_gradients_reach_every_parameter():
    circles, square = _scene(torch.float64)
    leaves = [circles.centre, circles.radius, circles.colour, square.vertices, square.colour]
    for leaf in leaves:
        leaf.requires_grad_()
    fn = lambda c, r, cc, v, vc: raster.rasterise(
        raster.Circles(c, r, cc), raster.Polygons(v, vc), size=12, softness=1.0
    )
    weights = torch.randn(3, 12, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    (fn(*leaves) * weights).sum().backward()
    for leaf in leaves:
        assert (leaf.grad.abs().flatten(1) if leaf.ndim > 1 else leaf.grad.abs()[:, None]).sum(1).min() > 0
    assert torch.autograd.gradcheck(fn, tuple(leaves))


def test_to_svg_parses_and_has_one_element_per_primitive():
    circles, square = _scene()
    svg = raster.to_svg(circles, square, size=100)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg" and root.get("viewBox") == "0 0 100 100"
    drawn = [child for child in root if child.tag != f"{ns}rect"]
    assert [child.tag for child in drawn] == [f"{ns}circle"] * 2 + [f"{ns}polygon"]  # painting order
    assert drawn[0].get("fill") == "rgb(255,0,0)" and float(drawn[0].get("r")) == pytest.approx(20.0)
    assert float(drawn[0].get("cx")) == pytest.approx(50.0)
    assert len(drawn[2].get("points").split()) == 4


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda c, s: raster.rasterise(), "at least one layer"),
        (lambda c, s: raster.rasterise(c.centre), "Circles or Polygons"),
        (lambda c, s: raster.rasterise(raster.Circles(c.centre, c.radius[:1], c.colour)), "mismatched"),
        (lambda c, s: raster.rasterise(raster.Circles(c.centre[:, :1], c.radius, c.colour)), "mismatched"),
        (lambda c, s: raster.rasterise(raster.Polygons(s.vertices[:, :2], s.colour)), "V >= 3"),
        (lambda c, s: raster.rasterise(raster.Circles(c.centre.long(), c.radius, c.colour)), "float tensor"),
        (lambda c, s: raster.rasterise(c, raster.Polygons(s.vertices[None], s.colour[None])), "batch shape"),
        (lambda c, s: raster.rasterise(c, softness=0.0), "softness"),
        (lambda c, s: raster.rasterise(c, size=0), "size"),
        (lambda c, s: raster.rasterise(c, background=-3.0), "background"),
        (lambda c, s: raster.to_svg(raster.Circles(c.centre[None], c.radius[None], c.colour[None])), "one image"),
        (lambda c, s: raster.to_svg(raster.Circles(c.centre, c.radius, 2 * c.colour)), "tanh"),
    ],
)
def test_rasteriser_bad_input_raises_a_helpful_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call(*_scene())
