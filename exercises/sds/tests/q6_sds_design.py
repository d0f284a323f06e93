from otter.test_files import test_case

OK_FORMAT = False

name = "q6_sds_design"
points = 4

@test_case(points=0, hidden=False)
def test_within_budget(SDS):
    from course_lib.grading import check_sds_settings
    check_sds_settings(SDS)

