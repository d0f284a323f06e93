from otter.test_files import test_case

OK_FORMAT = False

name = "q7_guide"
points = 5

@test_case(points=0, hidden=False)
def test_within_budget(GUIDE):
    from course_lib.grading import check_guidance_settings
    check_guidance_settings(GUIDE)

