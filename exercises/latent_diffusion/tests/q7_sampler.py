from otter.test_files import test_case

OK_FORMAT = False

name = "q7_sampler"
points = 4

@test_case(points=0, hidden=False)
def test_within_budget(SAMPLER):
    from course_lib.grading import check_sampling_settings
    check_sampling_settings(SAMPLER)

